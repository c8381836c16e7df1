"""visdial-lg: a reproducible pipeline for 'Learning to Ground Visual Objects for Visual Dialog'."""

__version__ = "0.1.0"
