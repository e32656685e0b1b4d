using System.Diagnostics.CodeAnalysis;
using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.Instruments;

/// <summary>
/// The GPU classes the exchange lists. Values are stable (they are written to journals and ordered on when ids
/// are assigned): add new classes at the end, never renumber.
/// </summary>
public enum GpuClass : byte
{
    /// <summary>NVIDIA H100 SXM, 80 GB.</summary>
    H100 = 0,
    /// <summary>NVIDIA H200 SXM, 141 GB.</summary>
    H200 = 1,
    /// <summary>NVIDIA B200, 192 GB.</summary>
    B200 = 2,
    /// <summary>NVIDIA A100 SXM, 80 GB.</summary>
    A100 = 3,
    /// <summary>NVIDIA GeForce RTX 4090, 24 GB.</summary>
    Rtx4090 = 4,
}

/// <summary>What one GPU class is and how its books are priced.</summary>
/// <param name="Class">The class.</param>
/// <param name="Code">The code used in instrument symbols (e.g. <c>H100</c>, <c>RTX4090</c>).</param>
/// <param name="DisplayName">A human-readable name.</param>
/// <param name="MemoryGb">GPU memory in GB (vendor figure).</param>
/// <param name="TdpWatts">Maximum board/module power in watts (vendor figure).</param>
/// <param name="Band">Tick and price band of every book of this class, in micro-USD per GPU-hour.</param>
public readonly record struct GpuSpec(GpuClass Class, string Code, string DisplayName, int MemoryGb, int TdpWatts, PriceBand Band);

/// <summary>
/// The table of GPU classes. Price bands are chosen so every book's ladder can be indexed directly:
/// <c>(max − min) / tick + 1 ≤ <see cref="MaxLevels"/></c>.
/// </summary>
public static class GpuClasses
{
    /// <summary>The most price levels a book's band may span (a direct-indexed ladder with 16-bit level indices).</summary>
    public const int MaxLevels = 65_536;

    private const long Usd = 1_000_000; // micro-USD per dollar

    // Memory and power are the vendors' published figures (SXM modules where there is a choice).
    // Bands: the minimum is one tick (any positive price on the grid); the maximum sits several times above the
    // 2024–25 rental market (A100 ≈ $1–2/h, H100 ≈ $2–3/h, H200 ≈ $3–4/h, B200 ≈ $5–6/h, RTX 4090 ≈ $0.3–0.7/h) so
    // a price spike still trades, while the ladder stays within MaxLevels. The RTX 4090 trades at tenths of a
    // dollar, so it gets a finer tick ($0.0001) to keep relative price steps comparable to the big parts.
    private static readonly GpuSpec[] Table =
    [
        new(GpuClass.H100, "H100", "NVIDIA H100 SXM 80GB", 80, 700, new PriceBand(MinPrice: 1_000, MaxPrice: 20 * Usd, Tick: 1_000)),
        new(GpuClass.H200, "H200", "NVIDIA H200 SXM 141GB", 141, 700, new PriceBand(MinPrice: 1_000, MaxPrice: 30 * Usd, Tick: 1_000)),
        new(GpuClass.B200, "B200", "NVIDIA B200 192GB", 192, 1_000, new PriceBand(MinPrice: 1_000, MaxPrice: 50 * Usd, Tick: 1_000)),
        new(GpuClass.A100, "A100", "NVIDIA A100 SXM 80GB", 80, 400, new PriceBand(MinPrice: 1_000, MaxPrice: 10 * Usd, Tick: 1_000)),
        new(GpuClass.Rtx4090, "RTX4090", "NVIDIA GeForce RTX 4090", 24, 450, new PriceBand(MinPrice: 100, MaxPrice: 5 * Usd, Tick: 100)),
    ];

    private static readonly GpuClass[] AllClasses = Array.ConvertAll(Table, s => s.Class);
    private static readonly GpuSpec[] AllSpecs = [.. Table];

    /// <summary>Every class, in enum order.</summary>
    public static IReadOnlyList<GpuClass> All => AllClasses;

    /// <summary>Every class's spec, in enum order.</summary>
    public static IReadOnlyList<GpuSpec> Specs => AllSpecs;

    /// <summary>The spec of a class.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined class.</exception>
    public static GpuSpec Spec(GpuClass gpu)
    {
        // The table is in enum order (checked by the tests), so the value indexes it.
        if ((uint)gpu >= (uint)Table.Length)
            throw new ArgumentOutOfRangeException(nameof(gpu), gpu, "Not a defined GPU class.");
        return Table[(int)gpu];
    }

    /// <summary>The symbol code of a class (e.g. <c>RTX4090</c>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined class.</exception>
    public static string Code(GpuClass gpu) => Spec(gpu).Code;

    /// <summary>True for a defined class.</summary>
    public static bool IsDefined(GpuClass gpu) => (uint)gpu < (uint)Table.Length;

    /// <summary>Parses a symbol code exactly (case-sensitive, as symbols are written); false for anything else.</summary>
    public static bool TryParseCode([NotNullWhen(true)] string? code, out GpuClass gpu)
    {
        if (code is null)
        {
            gpu = default;
            return false;
        }
        return TryParseCode(code.AsSpan(), out gpu);
    }

    /// <summary>Parses a symbol code exactly (case-sensitive, as symbols are written); false for anything else.</summary>
    public static bool TryParseCode(ReadOnlySpan<char> code, out GpuClass gpu)
    {
        foreach (GpuSpec spec in Table)
        {
            if (code.SequenceEqual(spec.Code))
            {
                gpu = spec.Class;
                return true;
            }
        }
        gpu = default;
        return false;
    }
}
