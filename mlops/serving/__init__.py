"""Clients of the model servers (Triton, vLLM) behind small Protocols, and replica discovery."""
