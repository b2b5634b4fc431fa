"""Labs inside network namespaces: topologies, test services and traffic generators."""
