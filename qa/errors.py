"""The errors newsqa raises; the CLI and web app turn them into messages."""


class QAError(Exception):
    """Base class: anything a user can be told about without a traceback."""


class InputError(QAError):
    """A question, option or file given by the user is not acceptable."""


class CorpusError(QAError):
    """The corpus folder is missing or holds no usable article."""


class IndexStoreError(QAError):
    """The on-disk index is missing, stale, corrupted or cannot be written."""


class IndexWriteError(IndexStoreError):
    """A new index cannot be written (disk full, no permission, read-only, unsafe lock); the old is whole."""


class ModelError(QAError):
    """The embedding model cannot be found or loaded."""


class ClusterError(QAError):
    """The Ray cluster that was to embed an index cannot be used (not installed, unreachable, job failed)."""
