def test_token_counts_are_short_in_the_terminal_table() -> None:
    from clisight.cli.report import tokens

    assert [tokens(n) for n in (999, 65_123, 650_923, 1_364_196)] == ["999", "65,123", "650.9k", "1.36M"]
