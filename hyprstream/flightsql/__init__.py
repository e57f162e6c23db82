"""Layer 5: the Flight SQL adapter: pure protocol decoding (``_protocol``) and the server shell."""
