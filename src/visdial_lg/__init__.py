"""visdial-lg: a reproducible pipeline for 'Learning to Ground Visual Objects for Visual Dialog'.

One subpackage per stage of the workflow (docs/architecture.md): `download`, `demo`, `features`,
`text`, `training` (with `models`), `evaluation`, `report`; `cli` runs each stage as a
`visdial-lg` command; `core` holds what they share. Imports run cli -> stages -> core.
"""

__version__ = "0.1.0"
