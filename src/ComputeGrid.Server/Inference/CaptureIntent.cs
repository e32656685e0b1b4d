using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// What a request's hold will be captured for if the request runs on the node it was routed to first: that node (its
/// principal, whose revenue account is paid), the platform's fee in basis points, and the metered cost (tokens are known
/// before the run, so the cost at that node is too). It rides in the hold itself — <c>user_data_64</c> = (node principal
/// &lt;&lt; 16) | fee basis points, <c>user_data_32</c> = the cost in micro-USD — so once the hold is durable the charge
/// is a durable fact, and the answer need not wait for the capture: the settler posts it in the background, and
/// recovery at the next start completes any hold whose capture a crash cut off (<see cref="CaptureSettler"/>).
/// </summary>
/// <param name="NodePrincipal">The node's principal id (1 to 2^48 − 1).</param>
/// <param name="FeeBasisPoints">The platform's fee, basis points of the cost (0 to 10,000).</param>
/// <param name="CostMicroUsd">The metered cost at that node (1 to 2^32 − 1 micro-USD).</param>
public readonly record struct CaptureIntent(ulong NodePrincipal, int FeeBasisPoints, long CostMicroUsd)
{
    /// <summary>The largest node principal an intent can carry (48 bits).</summary>
    public const ulong NodePrincipalMax = (1UL << 48) - 1;

    /// <summary>The largest cost an intent can carry (32 bits, ≈ 4,295 USD).</summary>
    public const long CostMicroUsdMax = uint.MaxValue;

    /// <summary>The largest fee, in basis points (all of the cost).</summary>
    public const int FeeBasisPointsMax = 10_000;

    /// <summary>The platform's part of the cost (rounded down, as every capture computes it).</summary>
    public long FeeMicroUsd => Fee(CostMicroUsd, FeeBasisPoints);

    /// <summary>The fee of <paramref name="costMicroUsd"/> at <paramref name="basisPoints"/>, rounded down.</summary>
    public static long Fee(long costMicroUsd, int basisPoints) => checked(costMicroUsd * basisPoints / 10_000);

    /// <summary>
    /// The intent for a charge of <paramref name="costMicroUsd"/> to <paramref name="nodePrincipal"/>, or null when it
    /// cannot ride in a hold (the cost does not fit 32 bits, the principal 48, or there is nothing to capture): such a
    /// request takes the slow path (its capture is durable before the answer).
    /// </summary>
    public static CaptureIntent? TryCreate(ulong nodePrincipal, int feeBasisPoints, long costMicroUsd)
    {
        if (nodePrincipal is 0 or > NodePrincipalMax) return null;
        if (costMicroUsd is <= 0 or > CostMicroUsdMax) return null;
        if (feeBasisPoints is < 0 or > FeeBasisPointsMax) return null;
        return new CaptureIntent(nodePrincipal, feeBasisPoints, costMicroUsd);
    }

    /// <summary>The hold's <c>user_data_64</c>.</summary>
    public ulong UserData64 => (NodePrincipal << 16) | (uint)FeeBasisPoints;

    /// <summary>The hold's <c>user_data_32</c>.</summary>
    public uint UserData32 => checked((uint)CostMicroUsd);

    /// <summary>The intent a hold carries, or null (a hold written without one: <c>user_data_64</c> is 0).</summary>
    public static CaptureIntent? Of(in Transfer hold)
    {
        if (hold.UserData64 == 0) return null;
        return TryCreate(hold.UserData64 >> 16, (int)(hold.UserData64 & 0xFFFF), hold.UserData32);
    }
}
