#!/usr/bin/env bash
# Regenerate adapter/protocol/*_pb2.py(i) from the .proto files (needs grpcio-tools, in the dev extra).
set -euo pipefail
cd "$(dirname "$0")/../adapter/protocol"
"${VENV:-../../.venv}/bin/python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. CanalProtocol.proto EntryProtocol.proto
