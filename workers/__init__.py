"""RQ jobs that converge hosts to what the table says, and the worker entry."""
