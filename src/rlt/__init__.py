"""rlt: Reinforcement-Learned Teachers (Cetin, Zhao, Tang, 2025) on transformers and TRL."""

__version__ = "0.1.0"
