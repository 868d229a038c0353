"""The thin OSPO trainer: a LoRA policy trained with GRPO or OSPO, end to end.

Modules, one concept each:

- :mod:`~ospo_fast.train.config`: the documented :class:`TrainConfig` and its TOML loader
- :mod:`~ospo_fast.train.policy`: model loading (the embedded SmolLM2 included), LoRA, log-probs
- :mod:`~ospo_fast.train.rollout`: G completions per prompt with token char offsets
- :mod:`~ospo_fast.train.loss`: token-level PPO clip with KL
- :mod:`~ospo_fast.train.sft`: the SFT warm start on imperfect queries
- :mod:`~ospo_fast.train.evaluate`: held-out metrics under several retrievers
- :mod:`~ospo_fast.train.trainer`: the loop; :mod:`~ospo_fast.train.cli`: ``ospo-train``

The per-token advantages come from the library
(:func:`ospo_fast.attribution.step_token_advantages`), as they do for the TRL and verl
adapters.

Heavy dependencies (torch, transformers, peft) load only with the modules that need them.
"""

from ospo_fast.train.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]
