"""``deeper models`` and ``deeper datasets``."""

from __future__ import annotations

import argparse

from deeper.cli import add_data_dir, add_json, command


@command("models", "list the registered models with their parameter counts")
def configure_models(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  deeper models 'res*' --json"
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'res*'")
    add_json(p)
    p.set_defaults(run=run_models)


def run_models(args, out) -> dict:
    import torch

    from deeper.analysis.summary import default_num_classes
    from deeper.models import count_parameters, create_model, get_model_entry, list_models

    rows = []
    for name in list_models(args.pattern):
        entry = get_model_entry(name)
        c, h, _ = entry.default_input
        classes = default_num_classes(
            entry.default_input
        )  # 1000 for ImageNet-size inputs, as torchvision counts
        try:
            with torch.device("meta"):  # count without allocating or initialising (VGG has 100M+ weights)
                params = count_parameters(create_model(name, num_classes=classes, in_chans=c, img_size=h))
        except (RuntimeError, NotImplementedError):  # a factory that computes with real tensors
            params = count_parameters(create_model(name, num_classes=classes, in_chans=c, img_size=h))
        rows.append(
            {
                "name": name,
                "params": params,
                "input": "x".join(map(str, entry.default_input)),
                "classes": classes,
                "description": entry.description,
            }
        )
    width = max((len(r["name"]) for r in rows), default=4)
    out.line(f"{'model':{width}s} {'params':>12s}  {'input':9s} {'classes':>7s}  description")
    for r in rows:
        out.line(
            f"{r['name']:{width}s} {r['params']:>12,d}  {r['input']:9s} {r['classes']:>7d}  {r['description']}"
        )
    return {"models": rows}


@command("datasets", "list the registered datasets and where each one was found")
def configure_datasets(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  deeper datasets --data-dir ../shared/datasets"
    add_data_dir(p)
    add_json(p)
    p.set_defaults(run=run_datasets)


def run_datasets(args, out) -> dict:
    from deeper.data import DataSources, get_dataset_spec, list_datasets

    sources = DataSources.resolve(args.data_dir)
    rows = []
    for name in list_datasets():
        spec = get_dataset_spec(name)
        rows.append(
            {
                "name": name,
                "shape": list(spec.image_shape),
                "classes": spec.num_classes,
                "location": spec.source.locate(sources),
                "description": spec.description,
            }
        )
    width = max(len(r["name"]) for r in rows)
    out.line(f"{'dataset':{width}s} {'shape':9s} {'classes':>7s}  location")
    for r in rows:
        out.line(
            f"{r['name']:{width}s} {'x'.join(map(str, r['shape'])):9s} {r['classes']:>7d}  {r['location']}"
        )
    return {
        "datasets": rows,
        "offline_dir": str(sources.offline_dir) if sources.offline_dir else None,
        "cache_dir": str(sources.cache_dir),
    }
