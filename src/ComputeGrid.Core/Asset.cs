namespace ComputeGrid.Core;

/// <summary>
/// An asset the ledger keeps accounts in. The code is the ledger's partition key (TigerBeetle's
/// <c>ledger</c> field): accounts and transfers of different assets never mix.
/// </summary>
/// <param name="Code">Stable numeric code written into accounts, transfers and the log. Never zero.</param>
/// <param name="Symbol">Short display symbol, e.g. <c>USDC</c>.</param>
/// <param name="Decimals">How many minor units make one major unit, as a power of ten.</param>
public readonly record struct Asset(uint Code, string Symbol, int Decimals)
{
    /// <summary>USD stablecoin; one minor unit is one micro-USD (6 decimals).</summary>
    public static readonly Asset Usd = new(1, "USDC", 6);

    /// <summary>Bitcoin; one minor unit is one satoshi (8 decimals).</summary>
    public static readonly Asset Btc = new(2, "BTC", 8);

    /// <summary>The first asset code of node shares: a node's shares are the asset <c>NodeSharesBase + node</c>.</summary>
    public const uint NodeSharesBase = 0x1000_0000;

    /// <summary>The most node id a share asset can carry (the codes above <see cref="NodeSharesBase"/>).</summary>
    public const ulong NodeSharesNodeMax = uint.MaxValue - NodeSharesBase;

    /// <summary>
    /// The share tokens of node <paramref name="node"/> (its principal id): an asset of their own, whole shares
    /// (0 decimals), so shares and stablecoin never mix in one account.
    /// </summary>
    public static Asset NodeShares(ulong node)
    {
        if (node == 0 || node > NodeSharesNodeMax) throw new ArgumentOutOfRangeException(nameof(node), node, "node ids for shares are 1 to 2^32 - 2^28 - 1");
        return new Asset(NodeSharesBase + (uint)node, $"SHR-{node}", 0);
    }

    /// <summary>True when <paramref name="code"/> is a node's shares, with the node's id.</summary>
    public static bool IsNodeShares(uint code, out ulong node)
    {
        node = code > NodeSharesBase ? code - NodeSharesBase : 0;
        return node != 0;
    }

    /// <summary>Every asset the system knows, by code.</summary>
    public static IReadOnlyList<Asset> All { get; } = [Usd, Btc];

    /// <summary>Finds an asset by its code; false when the code is not known.</summary>
    public static bool TryFromCode(uint code, out Asset asset)
    {
        if (IsNodeShares(code, out ulong node)) { asset = NodeShares(node); return true; }
        foreach (var a in All)
        {
            if (a.Code == code) { asset = a; return true; }
        }
        asset = default;
        return false;
    }

    /// <summary>Finds an asset by its symbol (case-insensitive); false when the symbol is not known.</summary>
    public static bool TryFromSymbol(string symbol, out Asset asset)
    {
        foreach (var a in All)
        {
            if (string.Equals(a.Symbol, symbol, StringComparison.OrdinalIgnoreCase)) { asset = a; return true; }
        }
        asset = default;
        return false;
    }

    /// <summary>Minor units in one major unit (10^Decimals).</summary>
    public long UnitsPerMajor
    {
        get
        {
            long r = 1;
            for (int i = 0; i < Decimals; i++) r = checked(r * 10);
            return r;
        }
    }

    public override string ToString() => Symbol;
}
