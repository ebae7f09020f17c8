"""fx-fingpt: FinGPT-style news sentiment (module ``fingpt_service.server:app``, port 8001)."""
