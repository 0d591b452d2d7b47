"""The evaluation's outputs: a Markdown report and PNG plots, from the experiment's data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSIFIER_NAMES = {"nn": "nearest neighbour", "logreg": "logistic regression"}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def markdown(results: dict) -> str:
    """A human-readable summary: baseline, protection per set-up, image quality."""
    settings = results["settings"]
    lines = [
        "# facecloak eval: the tracker's view",
        "",
        f"Data `{settings['data']}`; {len(results['users'])} protected users "
        f"({', '.join(u['name'] for u in results['users'])}), seed {settings['seed']}, "
        f"device {settings['device']}; {results['seconds']} s in all.",
        "Protection = share of the user's clean test photos the tracker does NOT recognise as "
        "the user, after it learned from the cloaked photos (re-detected, re-aligned).",
        "",
        "## Clean baseline (nothing cloaked): accuracy on the user's test photos",
        "",
        "| tracker model | " + " | ".join(CLASSIFIER_NAMES.values()) + " |",
        "|---|" + "---|" * len(CLASSIFIER_NAMES),
    ]
    for model, scores in results["baseline"].items():
        lines.append(f"| {model} | " + " | ".join(_fmt(scores[c]) for c in CLASSIFIER_NAMES) + " |")
    lines += ["", "## Protection", ""]
    degradations = settings["degradations"]
    head = "| mode | cloaked with | tracker model | kind |"
    rule = "|---|---|---|---|"
    for degradation in degradations:
        head += f" {degradation}: NN / LR |"
        rule += "---|"
    lines += [head, rule]
    for row in results["setups"]:
        for model, cells in row["protection"].items():
            line = f"| {row['mode']} | {'+'.join(row['ensemble'])} | {model} | {cells['kind']} |"
            for degradation in degradations:
                scores = cells[degradation]
                line += f" {_fmt(scores['nn'])} / {_fmt(scores['logreg'])} |"
            lines.append(line)
    lines += [
        "",
        "## Image quality of the cloaked photos",
        "",
        "| mode | cloaked with | SSIM mean / min | PSNR dB | face SSIM mean / min | "
        "face PSNR dB | s/face |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["setups"]:
        q = row["quality"]
        lines.append(
            f"| {row['mode']} | {'+'.join(row['ensemble'])} | {q['ssim_mean']} / {q['ssim_min']} "
            f"| {_db(q['psnr_mean'])} | {q['face_ssim_mean']} / {q['face_ssim_min']} "
            f"| {_db(q['face_psnr_mean'])} | {row['seconds_per_face']} |"
        )
    return "\n".join(lines) + "\n"


def protection_plot(results: dict, destination: Path) -> Path:
    """Bars: protection per mode and tracker model (white-box, leave-one-out or unseen), as
    saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, nn, lr = [], [], []
    for row in results["setups"]:
        for model, cells in row["protection"].items():
            scores = cells[results["settings"]["degradations"][0]]
            labels.append(
                f"{row['mode']}\n{'+'.join(row['ensemble'])}\n→ {model}\n({cells['kind']})"
            )
            nn.append(scores["nn"] or 0.0)
            lr.append(scores["logreg"] or 0.0)
    positions = np.arange(len(labels))
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4.2))
    axes.bar(positions - 0.2, nn, 0.4, label="nearest neighbour")
    axes.bar(positions + 0.2, lr, 0.4, label="logistic regression")
    axes.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(positions, labels, fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("protection (test photos not recognised)")
    axes.set_title("facecloak eval: cloaked with → tracker model")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(destination, dpi=110)
    plt.close(figure)
    return destination
