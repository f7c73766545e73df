"""One module per group of report sections; each builds the data its template shows."""
