"""``deeper models`` and ``deeper datasets``."""

from __future__ import annotations

import argparse

from deeper.cli import add_data_dir, add_json, command


@command("models", "list the registered models with their parameter counts")
def configure_models(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  deeper models 'res*' --json"
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'res*'")
    p.add_argument("--task", help="only the models that fit this task (see `deeper tasks`)")
    add_json(p)
    p.set_defaults(run=run_models)


def run_models(args, out) -> dict:
    import inspect

    import torch

    from deeper.analysis.summary import default_num_classes
    from deeper.models import count_parameters, create_model, get_model_entry, list_models

    family = None
    if args.task:
        from deeper.tasks import get_task_class

        family = get_task_class(args.task).model_family or "-"
    rows = []
    for name in list_models(args.pattern, family=family):
        entry = get_model_entry(name)
        c, h, _ = entry.default_input
        classes = default_num_classes(
            entry.default_input
        )  # 1000 for ImageNet-size inputs, as torchvision counts
        size = {"img_size": h} if "img_size" in inspect.signature(entry.factory).parameters else {}
        try:
            with torch.device("meta"):  # count without allocating or initialising (VGG has 100M+ weights)
                params = count_parameters(create_model(name, num_classes=classes, in_chans=c, **size))
        except (RuntimeError, NotImplementedError):  # a factory that computes with real tensors
            params = count_parameters(create_model(name, num_classes=classes, in_chans=c, **size))
        rows.append(
            {
                "name": name,
                "params": params,
                "input": "x".join(map(str, entry.default_input)),
                "classes": classes,
                "family": entry.family,
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
                "kind": spec.kind,
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


@command("tasks", "list what deeper can learn: each task with its metrics, models, data and options")
def configure_tasks(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n  deeper tasks\n  deeper train --task gan-2d --task-arg modes=6 --epochs 20 --lr 0.001\n"
        "  deeper train --task distill --task-arg teacher=runs/big --model mlp --data mnist"
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter on the task names")
    add_json(p)
    p.set_defaults(run=run_tasks)


def run_tasks(args, out) -> dict:
    from deeper.data import get_dataset_spec, list_datasets
    from deeper.models import list_models
    from deeper.tasks import get_task_class, list_tasks

    rows = []
    for name in list_tasks(args.pattern):
        cls = get_task_class(name)
        models = list_models(family=cls.model_family) if cls.model_family else []
        data = (
            [d for d in list_datasets() if cls.takes_data(get_dataset_spec(d).kind)] if cls.data_kind else []
        )
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "metrics": [
                    {"name": m.name, "higher_is_better": m.higher_is_better, "primary": m.name == cls.primary}
                    for m in cls.metrics
                ],
                "models": models,
                "data": data,
                "options": {k: {"default": o.default, "help": o.help} for k, o in cls.options.items()},
            }
        )
    for r in rows:
        out.line(f"{r['name']}: {r['description']}")
        metrics = ", ".join(
            f"{m['name']}{' (primary)' if m['primary'] else ''} {'higher' if m['higher_is_better'] else 'lower'}"
            for m in r["metrics"]
        )
        out.line(f"  metrics: {metrics} is better")
        out.line(f"  models:  {_some(r['models']) or 'its own (--model is not used)'}")
        out.line(f"  data:    {_some(r['data']) or 'its own (--data is not used)'}")
        for key, o in r["options"].items():
            out.line(f"  --task-arg {key}={o['default']}  {o['help']}")
    return {"tasks": rows}


def _some(names: list[str], k: int = 8) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")
