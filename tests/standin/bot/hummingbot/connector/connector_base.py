"""The stand-in's ConnectorBase: scripts import it for their type hints."""


class ConnectorBase:
    pass
