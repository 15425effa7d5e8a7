"""One self-contained HTML page per run: ``DIR/report.html``.

`write_report` reads whatever the run directory holds and shows each part only
when its data is there:

=========================  ==============================================
``run.json``               header (kind, status, times), configuration, versions
``report.json``            classical metrics: summary, train/test table, per-class table, tuning
``metrics.json``           generator metrics (Frechet and kernel distances, scores; features, counts)
``history.json``           learning curves, drawn here with matplotlib
``profile.json``           data-quality warnings (``{"warnings": [str, ...]}``)
``*.png``                  confusion matrix, ROC curve, predicted vs true, importances, samples
``grids/``                 sample grids of a few epochs (first, last and between)
``explain/``               explanation plots and the values in ``explain.json``
=========================  ==============================================

Images are inlined as base64 data URIs and the style sheet is in the page, so
the file opens anywhere, offline, as one file; it needs no JavaScript. The page
is built with the standard library (`html.escape`): a template engine would be
one more dependency for one page. It is rewritten atomically, so a reader never
sees half a page.
"""

import base64
import datetime
import html
import io
import json
import math
import os
import re
import shlex

from keras_bigml.errors import DataError
from keras_bigml.files import atomic_path

REPORT_FILE = "report.html"
MAX_EPOCH_GRIDS = 4
MAX_CURVES = 12
ACRONYMS = {"pdp", "ice", "shap", "roc", "auc", "kl", "elbo", "mae", "rmse", "fid", "kid", "cv"}
WARNING_KINDS = ("leak", "constant", "duplicate", "missing", "imbalance", "outliers", "correlated")

# Headline numbers, in the order they are shown: (file, key path, label, format).
CLASSIFICATION_SUMMARY = [
    (("test", "accuracy"), "Test accuracy", "percent"),
    (("test", "roc_auc"), "Test ROC AUC", "number"),
    (("train", "accuracy"), "Train accuracy", "percent"),
    (("test_rows",), "Test rows", "count"),
]
REGRESSION_SUMMARY = [
    (("test", "r2"), "Test R²", "number"),
    (("test", "mae"), "Test MAE", "number"),
    (("test", "rmse"), "Test RMSE", "number"),
    (("test_rows",), "Test rows", "count"),
]
GENERATOR_SUMMARY = [
    ("frechet_distance", "real_frechet_distance", "Fréchet distance"),
    ("kernel_distance", "real_kernel_distance", "Kernel distance"),
    ("classifier_score", "real_classifier_score", "Classifier score"),
    ("label_agreement", None, "Label agreement"),
    ("test_negative_elbo", None, "Test negative ELBO"),
]
# What generator metrics were computed on: shown below their table, not as rows.
GENERATOR_BASIS = ("features", "generated_samples", "real_samples", "fid_comparable", "fid_note")
HEADLINE_LOSSES = ("loss", "g_loss", "d_loss")  # the totals a model trains on, before its parts
TRANSLATION_CAPTION = ("Translations by the final model; each row: a, a→b, a→b→a, b, b→a, b→a→b")
IMAGES = {
    "confusion_matrix.png": "Confusion matrix (test)",
    "roc_curve.png": "ROC curve (test)",
    "predicted_vs_true.png": "Predicted vs true (test)",
    "feature_importance.png": "Feature importance",
}


def write_report(run_dir: str | os.PathLike) -> str:
    """Build ``run_dir/report.html`` from the files of the run; return its path.

    Examples
    --------
    >>> import tempfile
    >>> from keras_bigml.workflows.classical import train_classical
    >>> run = tempfile.mkdtemp()
    >>> _ = train_classical("decision_tree", "iris", run)
    >>> path = write_report(run)
    >>> page = open(path, encoding="utf-8").read()
    >>> "Test accuracy" in page and "data:image/png;base64," in page and "<script" not in page
    True
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise DataError(f"No run directory at {run_dir}: nothing to report.")
    run = _Run(run_dir)
    page = _page(run)
    path = os.path.join(run_dir, REPORT_FILE)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as file:
        file.write(page)
    return path


class _Run:
    """The files of a run directory, read once; a file that is missing or unreadable is None."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(os.path.abspath(path))
        self.info = self.json("run.json")
        self.report = self.json("report.json")
        self.metrics = self.json("metrics.json")
        self.history = self.json("history.json")
        self.profile = self.json("profile.json")
        self.explain = self.json(os.path.join("explain", "explain.json"))

    def json(self, name):
        try:
            with open(os.path.join(self.path, name), encoding="utf-8") as file:
                return json.load(file)
        except (OSError, ValueError):
            return None

    def file(self, *names):
        path = os.path.join(self.path, *names)
        return path if os.path.isfile(path) else None

    @property
    def kind(self):
        if self.info and self.info.get("kind"):
            return str(self.info["kind"])
        if self.report:
            return "classical"
        return "generative" if self.history or self.file("samples.png") else "run"


def _page(run):
    sections = [
        _summary(run),
        _profile_section(run),
        _classical_section(run),
        _generator_section(run),
        _curves_section(run),
        _samples_section(run),
        _explain_section(run),
        _configuration_section(run),
    ]
    body = "\n".join(section for section in sections if section)
    if not body:
        body = '<section class="card"><p class="muted">This run directory holds no results yet.</p></section>'
    title = f"{run.name} · {run.kind} · keras_bigml"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{_header(run)}\n<main>\n{body}\n</main>\n{_footer(run)}\n</body>\n</html>\n"
    )


def _header(run):
    info = run.info or {}
    status = str(info.get("status") or ("finished" if run.report or run.history else "unknown"))
    facts = []
    if run.report:
        facts.append(f"{run.report.get('algorithm', '')} · {run.report.get('task', '')}".strip(" ·"))
    for key, label in (("started", "started"), ("finished", "finished")):
        if info.get(key):
            facts.append(f"{label} {_time(info[key])}")
    if info.get("seed") is not None:
        facts.append(f"seed {info['seed']}")
    if run.history:
        facts.append(f"{_epochs(run.history)} epochs")
    error = ""
    if info.get("error"):
        error = f'<p class="error">{_text(info["error"])}</p>'
    return (
        '<header class="masthead"><div class="wrap">'
        f'<p class="eyebrow">keras_bigml run report</p>'
        f'<h1>{_text(run.name)} <span class="kind">{_text(run.kind)}</span> '
        f'<span class="status status-{_slug(status)}">{_text(status)}</span></h1>'
        f'<p class="facts">{" · ".join(_text(fact) for fact in facts if fact)}</p>{error}'
        "</div></header>"
    )


def _summary(run):
    tiles = []
    if run.report:
        task = run.report.get("task")
        for keys, label, style in CLASSIFICATION_SUMMARY if task == "classification" else REGRESSION_SUMMARY:
            value = _dig(run.report, keys)
            if value is not None:
                tiles.append((label, _format(value, style), ""))
    if run.metrics:
        for key, baseline, label in GENERATOR_SUMMARY:
            if _is_number(run.metrics.get(key)):
                note = ""
                if baseline and _is_number(run.metrics.get(baseline)):
                    note = f"real vs real {_number(run.metrics[baseline])}"
                if key == "frechet_distance" and run.metrics.get("fid_comparable") is False:
                    note = "; ".join(filter(None, [note, "not comparable with published FIDs"]))
                style = "percent" if key == "label_agreement" else "number"
                tiles.append((label, _format(run.metrics[key], style), note))
    if run.history:
        tiles.append(("Epochs", str(_epochs(run.history)), ""))
        trained = [key for key in run.history if not key.startswith("val_")]
        totals = [key for key in HEADLINE_LOSSES if key in trained]
        for key in (totals or trained)[:2]:
            values = [v for v in run.history[key] if _is_number(v)]
            if values:
                tiles.append((f"Final {_label(key)}", _number(values[-1]), f"first {_number(values[0])}"))
    if run.profile and isinstance(run.profile.get("warnings"), list):
        count = len(run.profile["warnings"])
        tiles.append(("Data warnings", str(count), "see Data quality" if count else "none found"))
    if not tiles:
        return ""
    cells = "".join(
        f'<div class="tile"><div class="tile-label">{_text(label)}</div>'
        f'<div class="tile-value">{_text(value)}</div>'
        f'{f"<div class=tile-note>{_text(note)}</div>" if note else ""}</div>'
        for label, value, note in tiles
    )
    return f'<section class="summary">{cells}</section>'


def _profile_section(run):
    warnings = (run.profile or {}).get("warnings")
    if not isinstance(warnings, list):
        return ""
    if not warnings:
        items = '<p class="good">The data profile found no problems.</p>'
    else:
        rows = []
        for warning in warnings:
            kind = next((k for k in WARNING_KINDS if re.search(rf"\b{k}", str(warning), re.IGNORECASE)), None)
            tag = f'<span class="tag tag-{kind}">{kind}</span>' if kind else '<span class="tag">note</span>'
            rows.append(f"<li>{tag}<span>{_text(warning)}</span></li>")
        items = f'<ul class="warnings">{"".join(rows)}</ul>'
    facts = {key: value for key, value in run.profile.items() if _is_number(value) or isinstance(value, str)}
    if facts:
        items = _pairs(facts) + items
    return _card("Data quality", items, f"{len(warnings)} warning{'s' * (len(warnings) != 1)}")


def _classical_section(run):
    report = run.report
    if not report:
        return ""
    parts = []
    train, test = report.get("train") or {}, report.get("test") or {}
    tables = []
    names = [key for key in test if _is_number(test.get(key))]
    if names:
        rows = [[_label(name), _number(train.get(name)), _number(test.get(name))] for name in names]
        tables.append("<div><h3>Scores</h3>" + _table(["metric", "train", "test"], rows, numeric_from=1)
                      + "</div>")
    per_class = test.get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = [[_text(label), _number(values.get("precision")), _number(values.get("recall")),
                 _number(values.get("f1")), _count(values.get("support"))]
                for label, values in per_class.items()]
        header = ["class", "precision", "recall", "F1", "support"]
        tables.append(f"<div><h3>Per class (test)</h3>{_table(header, rows, numeric_from=1)}</div>")
    if tables:
        parts.append(f'<div class="tables">{"".join(tables)}</div>')
    tuning = report.get("tuning")
    if isinstance(tuning, dict):
        best = tuning.get("best_params") or {}
        rows = [[_text(key), _text(_compact(value))] for key, value in best.items()]
        score = _number(tuning.get("best_cv_score"))
        parts.append(f"<h3>Tuning</h3><p>{_text(tuning.get('method', ''))} search; best cross-validated "
                     f"score {score}.</p>" + (_table(["parameter", "best value"], rows) if rows else ""))
    figures = [_figure(run.file(name), caption) for name, caption in IMAGES.items() if run.file(name)]
    if figures:
        parts.append(f'<div class="figures">{"".join(figures)}</div>')
    subtitle = f"{report.get('train_rows', '?')} training rows, {report.get('test_rows', '?')} test rows"
    return _card("Model evaluation", "".join(parts), subtitle)


def _generator_section(run):
    if not isinstance(run.metrics, dict) or not run.metrics:
        return ""
    rows = []
    for key, value in run.metrics.items():
        if key.startswith("real_") or key in GENERATOR_BASIS:
            continue
        real = run.metrics.get(f"real_{key}")
        rows.append([_label(key), _number(value) if _is_number(value) else _text(_compact(value)),
                     _number(real) if _is_number(real) else "–"])
    note = ("Real vs real compares the real training images with the test images on the same "
            "classifier's features: the best a generator can hope for.")
    notes = [note] + [_text(line) for line in _generator_basis(run.metrics)]
    return _card("Generator metrics", _table(["metric", "generated", "real vs real"], rows, numeric_from=1)
                 + "".join(f'<p class="muted small">{line}</p>' for line in notes))


def _generator_basis(metrics):
    """Sentences on what the generator metrics were computed on: features, sample counts, FID note."""
    if "features" not in metrics:  # metrics written before they named their features
        return []
    real = metrics.get("real_samples")
    counts = [f"{_count(metrics.get('generated_samples'))} generated"]
    counts += [f"{_count(count)} real {split}" for split, count in real.items()] if isinstance(real, dict) else []
    note = metrics.get("fid_note")
    return [f"On {metrics['features']}: {', '.join(counts)} images.", *([str(note)] if note else [])]


def _curves_section(run):
    if not isinstance(run.history, dict) or not any(run.history.values()):
        return ""
    png = learning_curves_png(run.history)
    return _card("Learning curves", f'<img class="wide" alt="learning curves" src="{_data_uri(png)}">',
                 f"{_epochs(run.history)} epochs")


def learning_curves_png(history: dict) -> bytes:
    """Learning curves as PNG bytes: one panel per metric, its ``val_`` twin beside it.

    >>> learning_curves_png({"loss": [3.0, 2.0, 1.5], "val_loss": [3.2, 2.4, 2.0]})[:4]
    b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    names = [key for key in history if not key.startswith("val_")]
    names += [key[4:] for key in history if key.startswith("val_") and key[4:] not in history]
    names = names[:MAX_CURVES]
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(3.6 * columns, 2.6 * rows), dpi=110)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for axis, name in zip(axes, names, strict=False):
        for key, colour, label in ((name, "#2563eb", "train"), (f"val_{name}", "#ea580c", "validation")):
            values = [float(v) if _is_number(v) else math.nan for v in history.get(key, [])]
            if values:
                epochs = range(1, len(values) + 1)
                axis.plot(epochs, values, color=colour, linewidth=1.8, label=label,
                          marker="o" if len(values) <= 20 else None, markersize=3)
        axis.set_title(_label(name), fontsize=10, loc="left", color="#1f2937")
        axis.set_xlabel("epoch", fontsize=8, color="#6b7280")
        axis.tick_params(labelsize=8, colors="#4b5563")
        axis.grid(True, color="#e5e7eb", linewidth=0.8)
        axis.xaxis.get_major_locator().set_params(integer=True)
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
        if f"val_{name}" in history:
            axis.legend(fontsize=7, frameon=False)
    for axis in axes[len(names):]:
        axis.set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _samples_section(run):
    parts = []
    if run.file("samples.png"):
        caption = TRANSLATION_CAPTION if run.kind == "cyclegan" else "Samples from the final model"
        parts.append(_figure(run.file("samples.png"), caption, pixelated=True))
    grids = _epoch_grids(run.path)
    if grids:
        figures = "".join(_figure(path, f"epoch {epoch}", pixelated=True) for epoch, path in grids)
        parts.append(f'<h3>During training</h3><div class="figures four">{figures}</div>')
    if not parts:
        return ""
    return _card("Samples", "".join(parts))


def _epoch_grids(run_dir):
    """A few of ``grids/epoch_NNN.png``: the first, the last and evenly between."""
    folder = os.path.join(run_dir, "grids")
    if not os.path.isdir(folder):
        return []
    found = sorted((int(match.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
                   if (match := re.fullmatch(r"epoch_(\d+)\.png", name)))
    if len(found) <= MAX_EPOCH_GRIDS:
        return found
    picks = sorted({round(i * (len(found) - 1) / (MAX_EPOCH_GRIDS - 1)) for i in range(MAX_EPOCH_GRIDS)})
    return [found[i] for i in picks]


def _explain_section(run):
    folder = os.path.join(run.path, "explain")
    if not os.path.isdir(folder):
        return ""
    pictures = sorted(name for name in os.listdir(folder) if name.lower().endswith(".png"))
    parts = []
    if isinstance(run.explain, dict) and run.explain:
        parts.append(_values(run.explain))
    if pictures:
        figures = "".join(_figure(os.path.join(folder, name), _label(os.path.splitext(name)[0]))
                          for name in pictures)
        parts.append(f'<div class="figures">{figures}</div>')
    return _card("Explanations", "".join(parts)) if parts else ""


def _values(data):
    """A dict as readable tables: its scalars together, each dict of scalars and list of records alone.

    Lists of scalars read as a row of chips; anything deeper is shown as JSON.
    """
    scalars = {key: value for key, value in data.items() if not isinstance(value, (dict, list))}
    tables = [_pairs(scalars)] if scalars else []
    blocks = []
    for key, value in data.items():
        title = f"<h3>{_text(_label(key))}</h3>"
        if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            tables.append(f"<div>{title}{_pairs(value, labels=False)}</div>")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for item in value for k in item))
            rows = [[_cell(item.get(column)) for column in columns] for item in value]
            tables.append(f"<div>{title}{_table(columns, rows)}</div>")
        elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            chips = "".join(f'<span class="chip">{_cell(item)}</span>' for item in value)
            blocks.append(f'{title}<p class="chips">{chips}</p>')
        elif isinstance(value, (dict, list)):
            blocks.append(f"{title}<pre>{_text(json.dumps(value, indent=1))}</pre>")
    return f'<div class="tables">{"".join(tables)}</div>' + "".join(blocks)


def _configuration_section(run):
    info = run.info
    if not info:
        return ""
    parts = []
    command = info.get("command")
    if isinstance(command, list) and command:
        parts.append(f'<h3>Command</h3><pre class="command">{_text(shlex.join(map(str, command)))}</pre>')
    arguments = info.get("arguments")
    if isinstance(arguments, dict) and arguments:
        parts.append("<h3>Arguments</h3>" + _pairs(arguments, labels=False))
    versions = info.get("versions")
    if isinstance(versions, dict) and versions:
        chips = "".join(f'<span class="chip">{_text(name)} <b>{_text(version)}</b></span>'
                        for name, version in versions.items())
        parts.append(f'<h3>Package versions</h3><p class="chips">{chips}</p>')
    return _card("Configuration", "".join(parts)) if parts else ""


def _footer(run):
    from keras_bigml import __version__ as version

    written = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    return (f'<footer><div class="wrap">Written by keras_bigml {_text(version)} on {written} from '
            f"<code>{_text(os.path.abspath(run.path))}</code>.</div></footer>")


def _card(title, content, subtitle=""):
    sub = f'<span class="subtitle">{_text(subtitle)}</span>' if subtitle else ""
    return f'<section class="card"><h2>{_text(title)}{sub}</h2>{content}</section>'


def _table(header, rows, numeric_from=None):
    """An HTML table; cells are already escaped HTML. Columns from ``numeric_from`` on align right."""

    def cell(tag, index, value):
        numeric = numeric_from is not None and index >= numeric_from
        return f'<{tag}{" class=num" if numeric else ""}>{value}</{tag}>'

    head = "".join(cell("th", i, _text(str(name))) for i, name in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, value) for i, value in enumerate(row)) + "</tr>"
                   for row in rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _pairs(values, labels=True):
    """A two-column table of names and values, without a header."""
    rows = "".join(f'<tr><th scope="row">{_text(_label(key) if labels else key)}</th>'
                   f'<td class="num">{_cell(value)}</td></tr>' for key, value in values.items())
    return f'<div class="table"><table class="pairs"><tbody>{rows}</tbody></table></div>'


def _figure(path, caption, pixelated=False):
    with open(path, "rb") as file:
        uri = _data_uri(file.read())
    style = ' class="pixelated"' if pixelated else ""
    return (f'<figure><img{style} alt="{_text(caption)}" src="{uri}" loading="lazy">'
            f"<figcaption>{_text(caption)}</figcaption></figure>")


def _data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value):
    if _is_number(value):
        return _number(value)
    return _text(_compact(value))


def _compact(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "–" if value is None else str(value)


def _dig(data, keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data if _is_number(data) else None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format(value, style):
    if style == "percent":
        return f"{100 * value:.1f}%"
    if style == "count":
        return _count(value)
    return _number(value)


def _number(value):
    """Four significant digits, plain notation where it reads well."""
    if not _is_number(value):
        return "–"
    if isinstance(value, int):
        return _count(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3e}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    text = f"{value:.4g}"
    return text if "." in text or "e" in text else text + ".0"


def _count(value):
    return f"{value:,}" if isinstance(value, int) else _number(value)


def _epochs(history):
    return max((len(values) for values in history.values() if isinstance(values, list)), default=0)


def _label(key):
    """``d_a_loss`` -> ``D A loss``; ``roc_auc`` -> ``ROC AUC``; ``r2`` -> ``R²``."""
    special = {"roc_auc": "ROC AUC", "r2": "R²", "mae": "MAE", "rmse": "RMSE", "f1": "F1",
               "frechet_distance": "Fréchet distance", "kernel_distance": "Kernel distance (KID)",
               "test_negative_elbo": "Test negative ELBO", "kl_loss": "KL loss"}
    if key in special:
        return special[key]
    words = str(key).replace("_", " ").split()
    text = " ".join(word.upper() if word.lower() in ACRONYMS or len(word) == 1 else word for word in words)
    return text[:1].upper() + text[1:]


def _time(stamp):
    try:
        return datetime.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(stamp)


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower())


def _text(value):
    return html.escape(str(value), quote=True)


STYLE = """
:root { --ink: #111827; --soft: #4b5563; --faint: #9ca3af; --line: #e5e7eb; --paper: #f6f7f9;
  --card: #ffffff; --accent: #2563eb; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--paper); color: var(--ink); line-height: 1.5; font-size: 15px;
  font-family: "Inter", "Segoe UI", "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
code, pre { font-family: "JetBrains Mono", "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 13px; }
.wrap, main { max-width: 1120px; margin: 0 auto; padding: 0 28px; }
.masthead { background: linear-gradient(135deg, #0f172a 0%, #1e3a8a 100%); color: #f9fafb;
  padding: 30px 0 26px; }
.eyebrow { margin: 0 0 6px; text-transform: uppercase; letter-spacing: .12em; font-size: 11px;
  color: #93c5fd; font-weight: 600; }
h1 { margin: 0; font-size: 28px; font-weight: 700; letter-spacing: -.01em; }
.kind { font-weight: 400; color: #cbd5e1; margin-left: 4px; }
.status { display: inline-block; vertical-align: middle; margin-left: 10px; padding: 3px 11px;
  border-radius: 999px; font-size: 12px; font-weight: 600; letter-spacing: .03em; text-transform: uppercase;
  background: #475569; color: #fff; }
.status-finished { background: #16a34a; } .status-running { background: #d97706; }
.status-failed { background: #dc2626; }
.facts { margin: 8px 0 0; color: #cbd5e1; font-size: 14px; }
.error { margin: 12px 0 0; padding: 10px 14px; background: rgba(220, 38, 38, .18);
  border-left: 3px solid #f87171; border-radius: 6px; color: #fee2e2; font-family: monospace;
  font-size: 13px; }
main { padding-top: 24px; padding-bottom: 12px; }
.summary { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 14px;
  margin-bottom: 22px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 14px 16px;
  box-shadow: 0 1px 2px rgba(15, 23, 42, .04); }
.tile-label { color: var(--soft); font-size: 12px; font-weight: 600; text-transform: uppercase;
  letter-spacing: .05em; }
.tile-value { font-size: 28px; font-weight: 700; margin-top: 2px; font-variant-numeric: tabular-nums;
  letter-spacing: -.01em; }
.tile-note { color: var(--faint); font-size: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 20px 24px 22px;
  margin-bottom: 22px; box-shadow: 0 1px 3px rgba(15, 23, 42, .05); }
h2 { margin: 0 0 14px; font-size: 18px; font-weight: 650; display: flex; align-items: baseline; gap: 12px; }
.subtitle { color: var(--faint); font-size: 13px; font-weight: 400; }
h3 { margin: 22px 0 8px; font-size: 13px; text-transform: uppercase; letter-spacing: .06em;
  color: var(--soft); }
.table { overflow-x: auto; }
.tables { display: flex; flex-wrap: wrap; gap: 8px 56px; }
.tables h3 { margin-top: 0; }
.tables > .table, .tables > div { margin-bottom: 14px; }
table.pairs { min-width: 260px; }
table.pairs th { text-transform: none; letter-spacing: 0; font-size: 14px; font-weight: 500;
  color: var(--soft); border-bottom: 1px solid var(--line); }
.card > .table + .warnings { margin-top: 14px; }
table { border-collapse: collapse; min-width: 320px; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 16px 7px 0; text-align: left; border-bottom: 1px solid var(--line); font-size: 14px; }
th { color: var(--soft); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
  border-bottom: 2px solid var(--line); }
td.num, th.num { text-align: right; padding-left: 16px; }
tbody tr:hover { background: #f9fafb; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 18px;
  margin-top: 18px; }
.figures.four { grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); margin-top: 0; }
figure { margin: 0; background: #fbfbfc; border: 1px solid var(--line); border-radius: 10px; padding: 10px; }
figure img { display: block; width: 100%; height: auto; max-height: 420px; object-fit: contain; }
img.pixelated { image-rendering: pixelated; max-width: 420px; margin: 0 auto; }
img.wide { display: block; width: auto; max-width: 100%; height: auto; }
figcaption { margin-top: 6px; color: var(--soft); font-size: 13px; text-align: center; }
.warnings { list-style: none; margin: 0; padding: 0; }
.warnings li { display: flex; gap: 12px; align-items: baseline; padding: 8px 0;
  border-bottom: 1px solid var(--line); }
.tag { flex: none; min-width: 84px; text-align: center; padding: 2px 8px; border-radius: 6px; font-size: 11px;
  font-weight: 700; text-transform: uppercase; letter-spacing: .05em; background: #e5e7eb; color: #374151; }
.tag-leak { background: #fee2e2; color: #991b1b; } .tag-duplicate { background: #ffedd5; color: #9a3412; }
.tag-constant { background: #fef3c7; color: #92400e; } .tag-missing { background: #e0e7ff; color: #3730a3; }
.tag-imbalance { background: #fce7f3; color: #9d174d; } .tag-outliers { background: #ede9fe; color: #5b21b6; }
.tag-correlated { background: #cffafe; color: #155e75; }
.good { color: #15803d; font-weight: 600; margin: 0; }
.muted { color: var(--faint); } .small { font-size: 13px; margin-bottom: 0; }
pre { background: #0f172a; color: #e2e8f0; padding: 12px 14px; border-radius: 8px; overflow-x: auto;
  white-space: pre-wrap; word-break: break-all; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 0; }
.chip { background: #eef2ff; color: #3730a3; border-radius: 999px; padding: 3px 11px; font-size: 13px; }
.chip b { font-weight: 600; }
footer { color: var(--faint); font-size: 12px; padding: 8px 0 36px; }
footer code { font-size: 12px; }
"""
