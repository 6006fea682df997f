"""The backup store: where backup archives are kept (a folder, or an S3-compatible
bucket), always streamed, never held whole in memory."""
