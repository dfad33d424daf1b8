"""frpo: reproducibility package for FRPO (Fine-tuning Robust Policy Optimization, 2602.08813).

Layers (each imports only from the layers listed above it):
    losses      the FRPO objective (Eq. 4.1-4.3) in pure torch
    theory      numpy/scipy estimators: entropic risk, robust reward (dual), worst case (primal)
    trainer     FRPOConfig / FRPOTrainer on top of TRL's GRPO
    rewards, judges   reward functions in TRL's signature and judges behind one interface
    toyworld    the offline synthetic world
    stages      stage runners (RLHF, downstream fine-tuning, evaluation, sweeps)
    book, cli   execute the notebooks of a profile with papermill and build the Jupyter Book
"""

__version__ = "0.1.0"
