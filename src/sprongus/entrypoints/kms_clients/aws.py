"""Builds the AWS KMS provider for `aws://arn:aws:kms:REGION:ACCOUNT:key/ID` or `aws://alias/NAME`.

Credentials come from the usual AWS chain (environment, profile, role). An alias is resolved to its key once, here.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider
from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.kms import KmsOptions, ProviderUri, resource_match


def build(uri: ProviderUri, options: KmsOptions) -> AwsKmsMasterKeyProvider:
    arn = resource_match(uri)
    region = arn["region"] or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("SPRONGUS_KEY_PROVIDER: aws://alias/NAME needs AWS_REGION (or name the key by its ARN)")
    config = Config(connect_timeout=options.timeout, read_timeout=options.timeout,
                    retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=options.pool_size)
    client = _session().client("kms", region_name=region, endpoint_url=uri.endpoint,
                               verify=options.ca_file or True, config=config)
    return AwsKmsMasterKeyProvider.for_key(client, uri.resource)


@functools.cache
def _models() -> Any:
    return botocore.loaders.create_loader()


def _session() -> Any:
    """A session of our own (boto3's default one is global and not thread-safe) that shares the parsed service
    models, so a current and several retired providers do not each parse botocore's JSON again."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _models())
    return boto3.session.Session(botocore_session=core)
