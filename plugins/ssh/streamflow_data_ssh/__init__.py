"""streamflow-data-ssh: the ``ssh`` connector of streamflow-data, built on asyncssh.

Install it beside streamflow-data and name ``ssh`` as a deployment's connector type; its
options are :class:`SSHOptions`.
"""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

# cryptography 51 deprecates DSA, and asyncssh names DSA's key classes while it is imported;
# the warning is asyncssh's to fix, not our users' to read on every command. Only that
# warning, from asyncssh's own modules and only while it is imported here, is ignored.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        message="DSA is deprecated",
        category=CryptographyDeprecationWarning,
        module=r"asyncssh\.",
    )
    import asyncssh  # noqa: F401

from streamflow_data_ssh.connector import SSHConnector
from streamflow_data_ssh.options import NodeOptions, SSHOptions
from streamflow_data_ssh.pool import StreamCounts

__all__ = ["NodeOptions", "SSHConnector", "SSHOptions", "StreamCounts"]
