"""The adapter node (``canal-adapter``): config, conversion, routing, workers, REST; ``app`` wires them."""
