"""streamflow-data-s3: the ``s3`` connector of streamflow-data, built on aiobotocore.

Install it beside streamflow-data and name ``s3`` as a deployment's connector type; its
options are :class:`S3Options`. Each bucket is a location; paths are keys.
"""

from streamflow_data_s3.connector import S3Connector
from streamflow_data_s3.options import S3Options

__all__ = ["S3Connector", "S3Options"]
