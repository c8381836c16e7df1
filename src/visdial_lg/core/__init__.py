"""Shared foundations, used by every stage and by the Snakefile at parse time (no torch at import).

- `config`: the schema-validated config and its typed sections (one per schema section)
- `runs`: run ids `{version}-{model}-{decoder}`, the models, decoders, versions, grounding variants
- `paths`: where each result is written, as the workflow's path patterns
- `device`: the torch device of the config's `device` value (`auto`, `cpu`, `cuda[:N]`)
- `files`: atomic writes, sha256, the one JSON reader and the one safe tensor loader
- `errors`: the error types whose one-line messages the CLI prints
"""
