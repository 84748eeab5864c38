"""canal's wire protocol: generated protobuf messages, framing/codec and the auth scramble."""
