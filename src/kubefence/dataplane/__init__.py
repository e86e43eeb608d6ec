"""Real enforcement: ``nft`` renders rulesets (pure), ``netns`` runs them on Linux namespaces."""
