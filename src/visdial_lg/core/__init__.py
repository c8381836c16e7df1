"""Shared foundations, used by every stage and by the Snakefile at parse time (no torch at import).

- `schema`: validation of a config dict against the schema, filling its defaults
- `config`: loading configs, and the typed config: one frozen dataclass per schema section
- `runs`: run ids `{version}-{model}-{decoder}`, the models, decoders, versions, grounding variants
- `paths`: where each result is written, as the workflow's path patterns
- `device`: the torch device of the config's `device` value (`auto`, `cpu`, `cuda[:N]`)
- `files`: atomic writes, sha256, the one JSON reader and the one safe tensor loader
- `errors`: the error types whose one-line messages the CLI prints
"""
