"""relift: ReLIFT (RL interleaved with online fine-tuning on the hardest questions) as a plugin on veRL 0.9.1."""

import logging

# torch.nested.narrow, which veRL's packed batches go through, asks torch.fx whether it is tracing, and torch
# logs once per process that the question is ambiguous: a note to torch's developers, not to a user.
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
