"""Writers ("outer adapters"): the contract in ``base``, discovery in ``registry``, built-ins."""
