"""CLI wiring for training and prediction: ``defectkit finetune <model>``,
``defectkit predict <model>`` and ``defectkit embed-text``.

Each model family has its own small wiring module exposing ``register_finetune(sub)`` and
``register_predict(sub)`` (and optionally ``register_top(subparsers)`` for top-level commands).
"""

from __future__ import annotations

import argparse
import importlib

from defectkit.finetune.flags import add_hidden_aliases

#: model wiring modules, in the order their subcommands are listed in --help
MODEL_CLI_MODULES = (
    "defectkit.finetune.yolo_world.cli",
    "defectkit.finetune.sam.cli",
    "defectkit.finetune.image.cli",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    finetune = subparsers.add_parser("finetune", help="fine-tune or train a model", description="Fine-tune or train a model.")
    ft_sub = finetune.add_subparsers(dest="model", metavar="MODEL")
    predict = subparsers.add_parser("predict", help="write predictions of a trained model",
                                    description="Write predictions (COCO results json / image-level CSV).")
    pr_sub = predict.add_subparsers(dest="model", metavar="MODEL")
    for name in MODEL_CLI_MODULES:
        mod = importlib.import_module(name)
        if hasattr(mod, "register_top"):
            mod.register_top(subparsers)
        mod.register_finetune(ft_sub)
        mod.register_predict(pr_sub)
    for parser in (*ft_sub.choices.values(), *pr_sub.choices.values()):
        add_hidden_aliases(parser)  # one spelling per concept; old ones still accepted (docs/cli_flags.md)
