"""Pipeline 1 deployment: the ONNX model behind `deploy` into a Triton model repository on S3.

Steps: fetch -> publish (next version, staging upload, atomic publish) -> serve (load on every
replica) -> verify (golden samples) -> set_aliases (`live`, `previous`); reconcile (the
onExit handler: serve exactly what `live` says) and rollback.
"""
