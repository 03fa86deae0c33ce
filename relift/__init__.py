"""relift: ReLIFT (RL interleaved with online fine-tuning on the hardest questions) as a plugin on veRL 0.9.1."""
