"""fx-fastapi: online inference for the FX direction model."""
