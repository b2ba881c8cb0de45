"""``roomverse party``: the sample characters, one shared embedded engine and a firehose,
paced so visits start within a minute (:func:`~node.party.party.run_party`)."""
