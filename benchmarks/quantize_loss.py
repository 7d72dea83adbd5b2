"""What Q8_0 costs in loss: a run's model evaluated on its own corpus's held-out split as float32 and with its
linears' weights in Q8_0 (`--quantize q8_0`), on the same batches, with the run's own evaluation (minigpt/train.py:
evaluate, eval_iters batches of each split from a fixed generator); the loss increase in nats and in bits per byte.

    python benchmarks/quantize_loss.py --out-dir base            # the base preset's run (docs/pretraining.md)

docs/inference.md shows the result, with the machine.
"""

import argparse
import dataclasses
import time

from minigpt import load, runtime
from minigpt.objectives import LanguageModel
from minigpt.run import load_dataset
from minigpt.train import evaluate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="a run directory trained on a tokenized corpus")
    parser.add_argument("--eval-iters", type=int, default=None, help="batches of each split (default: the run's)")
    args = parser.parse_args()
    runtime.configure()
    results = {}
    for quantize in (None, "q8_0"):
        pretrained = load.read(args.out_dir)
        cfg = pretrained.train if args.eval_iters is None else dataclasses.replace(pretrained.train,
                                                                                   eval_iters=args.eval_iters)
        dataset = load_dataset(cfg, pretrained.tokenizer)
        list(dataset.fit(cfg.model.block_size, cfg.truncate))  # (the windows' length, as the run fitted them)
        model = load.build_model(pretrained, backend="auto", quantize=quantize)
        t0 = time.perf_counter()
        results[quantize] = evaluate(model, dataset, cfg, LanguageModel())
        results[quantize]["seconds"] = time.perf_counter() - t0
        results[quantize]["quantized"] = len(model.quantized)
    f32, q8 = results[None], results["q8_0"]
    print(f"{args.out_dir}: {q8['quantized']} weights in Q8_0; {cfg.eval_iters} batches of {cfg.batch_size} x "
          f"{cfg.model.block_size} tokens per split\n")
    print("| weights | train loss | val loss | val bits per byte | seconds |")
    print("|---|---|---|---|---|")
    for name, r in (("float32", f32), ("Q8_0", q8)):
        print(f"| {name} | {r['train_loss']:.5f} | {r['val_loss']:.5f} | {r['val_bpb']:.5f} | {r['seconds']:.1f} |")
    print(f"\nQ8_0 - float32: val loss {q8['val_loss'] - f32['val_loss']:+.5f} nats, "
          f"{q8['val_bpb'] - f32['val_bpb']:+.5f} bits per byte")


if __name__ == "__main__":
    main()
