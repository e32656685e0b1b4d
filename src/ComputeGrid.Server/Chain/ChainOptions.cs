namespace ComputeGrid.Server.Chain;

/// <summary>
/// Where the server's chain is (<see cref="ServerOptions.Chain"/>; null: no chain). Either a JSON-RPC endpoint with a key
/// file for the server's account (its contracts deployed once, their addresses kept in <c>DATA/chain.json</c> and reused),
/// or a demo chain: a local Anvil started and stopped by the server, contracts deployed, its ten dev accounts funded.
/// </summary>
public sealed record ChainOptions
{
    /// <summary>The JSON-RPC endpoint of an existing chain, or null for a demo Anvil started by the server.</summary>
    public string? RpcUrl { get; init; }

    /// <summary>A file holding the server's private key (hex, one line); required with <see cref="RpcUrl"/>, unused on Anvil (dev key 0).</summary>
    public string? KeyFile { get; init; }

    /// <summary>Blocks a transaction needs (its own included) before its effect is final; null: the default of the chain kind.</summary>
    public int? Confirmations { get; init; }

    /// <summary>Anvil mines a block every this many seconds instead of one per transaction (demo chain only).</summary>
    public int? BlockTimeSeconds { get; init; }

    /// <summary>Confirmations on a demo Anvil unless told: it never reorganises by itself, two blocks exercise the waiting.</summary>
    public const int AnvilConfirmationsDefault = 2;

    /// <summary>Confirmations on an external chain unless told (a common choice on L2s and Ethereum mainnet alike).</summary>
    public const int RpcConfirmationsDefault = 12;

    /// <summary>The most confirmations one may ask for.</summary>
    public const int ConfirmationsMax = 1_000;

    /// <summary>The longest demo block time, seconds.</summary>
    public const int BlockTimeSecondsMax = 3_600;

    /// <summary>A demo chain (a local Anvil) with the given block time.</summary>
    public static ChainOptions Demo(int? blockTimeSeconds = null, int? confirmations = null) =>
        new() { BlockTimeSeconds = blockTimeSeconds, Confirmations = confirmations };

    /// <summary>True for a demo Anvil started by the server.</summary>
    public bool IsDemo => RpcUrl is null;

    /// <summary>The confirmations in force.</summary>
    public int ConfirmationsOrDefault => Confirmations ?? (IsDemo ? AnvilConfirmationsDefault : RpcConfirmationsDefault);

    /// <summary>The first thing wrong with these options, in one line for the user, or null when they are fine.</summary>
    public string? Problem()
    {
        if (RpcUrl is not null)
        {
            if (!Uri.TryCreate(RpcUrl, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
                return $"--chain '{RpcUrl}' is not an http:// or https:// JSON-RPC address";
            if (string.IsNullOrWhiteSpace(KeyFile)) return "--chain needs --chain-key FILE (the server's account's private key)";
            if (BlockTimeSeconds is not null) return "--chain-block-time applies to the demo chain (Anvil) only, not to --chain";
        }
        else if (KeyFile is not null) return "--chain-key needs --chain RPC_URL";
        if (Confirmations is < 1 or > ConfirmationsMax) return $"--chain-confirmations must be in [1, {ConfirmationsMax}]";
        if (BlockTimeSeconds is < 1 or > BlockTimeSecondsMax) return $"--chain-block-time must be in [1, {BlockTimeSecondsMax}] seconds";
        return null;
    }
}
