"""ResNet-18 image-classification pipeline: prepare_data -> train -> quality_gate -> export_onnx -> validate_onnx.

Each module is a step run as `python -m training.resnet.<step>`; the steps hand over through
Argo output parameters and MLflow registry aliases (`champion`, `deploy`), never through files.
"""
