using System.Collections.Concurrent;
using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>The in-memory nonce registry: its state transitions, and that concurrent callers never both win a nonce.</summary>
public class NonceRegistryTests
{
    private static NonceKey Key(int seed)
    {
        var nonce = new byte[32];
        new Random(seed).NextBytes(nonce);
        return new NonceKey(EvmAddress.Parse(X402World.Token), EvmAddress.Parse(X402World.DevAddress0), Bytes32.FromBytes(nonce));
    }

    [Fact]
    public void A_nonce_goes_free_to_in_flight_to_settled_and_never_back()
    {
        var registry = new InMemoryNonceRegistry();
        var key = Key(1);
        Assert.False(registry.IsUsed(key));
        Assert.Equal(NonceReservation.Reserved, registry.TryReserve(key));
        Assert.Equal(NonceReservation.InFlight, registry.TryReserve(key));
        Assert.True(registry.MarkSettled(key));
        Assert.Equal(NonceReservation.AlreadySettled, registry.TryReserve(key));
        Assert.False(registry.MarkSettled(key));
        Assert.False(registry.Release(key));
        Assert.True(registry.IsUsed(key));
    }

    [Fact]
    public void A_released_nonce_is_free_and_a_nonce_can_be_marked_settled_without_a_reservation()
    {
        var registry = new InMemoryNonceRegistry();
        Assert.Equal(NonceReservation.Reserved, registry.TryReserve(Key(1)));
        Assert.True(registry.Release(Key(1)));
        Assert.False(registry.Release(Key(1)));
        Assert.False(registry.IsUsed(Key(1)));
        Assert.True(registry.MarkSettled(Key(2))); // e.g. seen used on chain
        Assert.Equal(NonceReservation.AlreadySettled, registry.TryReserve(Key(2)));
    }

    [Fact]
    public void The_same_nonce_of_another_payer_or_token_is_another_key()
    {
        var registry = new InMemoryNonceRegistry();
        var key = Key(1);
        Assert.Equal(NonceReservation.Reserved, registry.TryReserve(key));
        Assert.Equal(NonceReservation.Reserved, registry.TryReserve(key with { From = EvmAddress.Parse(X402World.PayTo) }));
        Assert.Equal(NonceReservation.Reserved, registry.TryReserve(key with { Asset = EvmAddress.Parse(X402World.PayTo) }));
    }

    [Fact]
    public void Many_threads_racing_for_many_nonces_win_each_exactly_once_while_others_release_and_settle()
    {
        var registry = new InMemoryNonceRegistry();
        var keys = Enumerable.Range(0, 200).Select(Key).ToArray();
        var wins = new ConcurrentDictionary<NonceKey, int>();
        int broken = 0; // an assertion thrown on a raw thread would take the test host down: count instead
        using var start = new Barrier(8);
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            var random = new Random(t);
            for (int i = 0; i < 2000; i++)
            {
                var key = keys[random.Next(keys.Length)];
                if (registry.TryReserve(key) != NonceReservation.Reserved) continue;
                // The holder either gives the nonce back (nothing was sent) or settles it; only a settled one counts as spent.
                if (random.Next(2) == 0) { if (!registry.Release(key)) Interlocked.Increment(ref broken); }
                else
                {
                    if (!registry.MarkSettled(key)) Interlocked.Increment(ref broken);
                    wins.AddOrUpdate(key, 1, (_, n) => n + 1);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(0, broken);
        Assert.NotEmpty(wins);
        Assert.All(wins, w => Assert.Equal(1, w.Value));
        Assert.All(wins.Keys, k => Assert.Equal(NonceReservation.AlreadySettled, registry.TryReserve(k)));
    }
}
