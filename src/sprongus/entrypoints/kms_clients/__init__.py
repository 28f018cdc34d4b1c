"""One builder module per KMS vendor: `build(uri: ProviderUri, options: KmsOptions) -> MasterKeyProvider`.

Each imports its vendor SDK at module level; kms.py imports the module only when that vendor is configured.
"""
