"""Deployment steps: put a registered model into service, verify it, move aliases, roll back."""
