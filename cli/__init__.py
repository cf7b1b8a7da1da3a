"""The `pressluft` command line (installed as the package pressluft_cli)."""
