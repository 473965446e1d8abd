"""Train with classiformer on Spark: ``pyspark.ml.torch.distributor.TorchDistributor`` starts
torchrun-style processes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` set), the function joins their
process group and runs the ordinary training loop; rank 0 writes the run folder.

Needs ``pip install pyspark`` (3.4 or later) and a Java runtime (Debian: ``apt-get install -y
default-jre-headless``). On a cluster, drop ``local_mode`` and put the data and the run folder on
storage every executor sees.

    python examples/spark_train.py train.jsonl runs/spark --processes 2 --preset lesson
"""

from __future__ import annotations

import argparse


def train(path: str, run_dir: str, preset: str, epochs: int) -> float:
    # Imported inside: Spark ships this function to processes that import it afresh.
    from classiformer import distributed, resolve_config
    from classiformer.data import read_dataset
    from classiformer.training import fit

    with distributed.process_group("cpu"):  # gloo; "cuda" with use_gpu=True (NCCL)
        config = resolve_config(preset, train={"epochs": epochs})
        return fit(config, read_dataset(path), run_dir, progress=False, overwrite=True).best_val_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", help="training data (.csv, .tsv, .jsonl[.gz], .parquet)")
    ap.add_argument("run_dir", help="run folder (best/, last/, metrics.jsonl)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--preset", default="lesson")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()

    from pyspark.ml.torch.distributor import TorchDistributor
    from pyspark.sql import SparkSession

    SparkSession.builder.master(f"local[{args.processes}]").appName("classiformer").getOrCreate()
    accuracy = TorchDistributor(num_processes=args.processes, local_mode=True, use_gpu=False).run(
        train, args.train, args.run_dir, args.preset, args.epochs)
    print(f"best validation accuracy {accuracy:.4f}; model in {args.run_dir}/best")


if __name__ == "__main__":
    main()
