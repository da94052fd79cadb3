"""streamflow-data-ssh: the ``ssh`` connector of streamflow-data, built on asyncssh.

Install it beside streamflow-data and name ``ssh`` as a deployment's connector type; its
options are :class:`SSHOptions`.
"""

from streamflow_data_ssh.connector import SSHConnector
from streamflow_data_ssh.options import NodeOptions, SSHOptions
from streamflow_data_ssh.pool import StreamCounts

__all__ = ["NodeOptions", "SSHConnector", "SSHOptions", "StreamCounts"]
