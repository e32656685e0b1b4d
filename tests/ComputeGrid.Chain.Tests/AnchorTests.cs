using ComputeGrid.Chain.Contracts;
using Xunit.Abstractions;

namespace ComputeGrid.Chain.Tests;

[Collection(AnvilCollection.Name)]
public sealed class AnchorTests(AnvilFixture f, ITestOutputHelper output)
{
    /// <summary>The aim for one anchor: one storage write of the root, the rest in the event.</summary>
    private const long AnchorGasMax = 60_000;

    [ChainFact]
    public async Task Anchoring_a_checkpoint_costs_at_most_60000_gas_and_reads_back()
    {
        var random = new Random(60);
        AnchorClient anchor = f.Anchor(0);
        AnchoredLiability[] liabilities = [new(1, 123_456_789_012), new(2, 5_000_000_000)];
        ulong op = (ulong)random.Next(1_000, 2_000);
        var roots = new List<(ulong Op, string Root, ChainReceipt Receipt)>();
        for (int i = 0; i < 3; i++, op += 1_000)
        {
            string root = ChainTestKit.Bytes32(random);
            roots.Add((op, root, await anchor.AnchorAsync(op, root, ChainTestKit.Bytes32(random), liabilities)));
        }

        foreach (var (o, root, receipt) in roots)
        {
            output.WriteLine($"anchor op {o}: {receipt.GasUsed} gas");
            Assert.True(receipt.GasUsed <= AnchorGasMax, $"anchor used {receipt.GasUsed} gas, aim ≤ {AnchorGasMax}");
            Assert.Equal(root, await anchor.RootAtAsync(o));
        }
        var (lastOp, lastRoot, _) = roots[^1];
        Assert.Equal(new AnchoredRoot(lastOp, lastRoot), await new AnchorClient(f.As(9), f.Chain.Anchor).LatestAsync());
        Assert.Null(await anchor.RootAtAsync(lastOp + 1));

        var back = await Assert.ThrowsAsync<ChainRevertException>(() => anchor.AnchorAsync(lastOp, ChainTestKit.Bytes32(random), ChainTestKit.Bytes32(random), liabilities));
        Assert.Equal("op number must increase", back.Reason);
        var stranger = await Assert.ThrowsAsync<ChainRevertException>(() => f.Anchor(9).AnchorAsync(lastOp + 1, ChainTestKit.Bytes32(random), ChainTestKit.Bytes32(random), liabilities));
        Assert.Equal("only operator", stranger.Reason);
        Assert.Equal(lastRoot, (await anchor.LatestAsync())!.Root);
    }
}
