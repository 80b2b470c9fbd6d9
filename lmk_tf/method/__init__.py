"""The method of Noothout et al. 2020 in one place: settings, layers, networks,
targets, losses, the composed global-to-local graph and trained model directories."""
