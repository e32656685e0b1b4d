using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>A state machine snapshot that cannot be restored: truncated, damaged, of another version or other settings.</summary>
public sealed class SnapshotInvalidException(string message, Exception? inner = null) : Exception("exchange snapshot refused: " + message, inner);

public sealed partial class ExchangeStateMachine
{
    // ================================================================== snapshots

    /// <summary>"CGSM" little-endian.</summary>
    public const uint SnapshotMagic = 0x4D534743;

    /// <summary>
    /// The snapshot format written. 3: the layout of 2, from machines that prune ended leases in the Tick; a 2 may hold
    /// leases a replay would have pruned by then, so it is refused (the start falls back to replaying the journal).
    /// </summary>
    public const uint SnapshotVersion = 4;

    private const int SnapshotHeaderBytes = 16, SnapshotChecksumBytes = 32;

    /// <summary>
    /// Writes the whole state that decides what later commands do: <c>magic, version, body length, reserved</c>, the body,
    /// then the SHA-256 of everything before it. The body (little-endian, <see cref="BinaryWriter"/>'s encodings): the
    /// settings it was made under, the counters, the instrument registry (its clock, last id, every instrument it knows
    /// as its record, the active ids), traders, providers, pending deposits and withdrawals with their transfers, nodes,
    /// capacity committed and leased and the leases on each node in order, open orders, every book with its resting orders
    /// in priority order (empty books too), leases in the order they were made with every field and whether each still
    /// waits for its start, and the remembered order ends. Indexes that follow from these (open orders per trader,
    /// collateral accounts, node pools, leases by participant, leases resold from each) are rebuilt on restore.
    /// </summary>
    public void WriteSnapshot(Stream output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var body = new MemoryStream();
        using (var w = new BinaryWriter(body, System.Text.Encoding.UTF8, leaveOpen: true)) WriteBody(w);
        byte[] header = new byte[SnapshotHeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(header, SnapshotMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), SnapshotVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), body.Length);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(header);
        sha.AppendData(body.GetBuffer(), 0, (int)body.Length);
        output.Write(header);
        output.Write(body.GetBuffer(), 0, (int)body.Length);
        output.Write(sha.GetHashAndReset());
    }

    /// <summary>The snapshot as bytes (<see cref="WriteSnapshot(Stream)"/>).</summary>
    public byte[] WriteSnapshot()
    {
        var ms = new MemoryStream();
        WriteSnapshot(ms);
        return ms.ToArray();
    }

    /// <summary>
    /// A machine restored from a snapshot, over <paramref name="emptyRegistry"/> (restored too) and under
    /// <paramref name="options"/>, which must be the settings it was written under. The snapshot is checked whole
    /// (checksum, every part, then <see cref="CheckInvariants"/>) before the registry is touched: a refused snapshot
    /// leaves nothing half-restored.
    /// </summary>
    /// <exception cref="SnapshotInvalidException">Truncated, damaged, another version or other settings, or inconsistent.</exception>
    /// <exception cref="InvalidOperationException">The registry is not empty.</exception>
    public static ExchangeStateMachine ReadSnapshot(ReadOnlySpan<byte> snapshot, InstrumentRegistry emptyRegistry, StateMachineOptions options)
    {
        ArgumentNullException.ThrowIfNull(emptyRegistry);
        ArgumentNullException.ThrowIfNull(options);
        if (emptyRegistry.Count > 0 || emptyRegistry.Now is not null) throw new InvalidOperationException("A snapshot is restored over an empty registry only.");
        if (snapshot.Length < SnapshotHeaderBytes + SnapshotChecksumBytes) throw new SnapshotInvalidException($"{snapshot.Length} bytes, shorter than a header and checksum");
        if (BinaryPrimitives.ReadUInt32LittleEndian(snapshot) != SnapshotMagic) throw new SnapshotInvalidException("bad magic");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(snapshot[4..]);
        if (version != SnapshotVersion) throw new SnapshotInvalidException($"unknown version {version}");
        long bodyBytes = BinaryPrimitives.ReadInt64LittleEndian(snapshot[8..]);
        if (bodyBytes != snapshot.Length - SnapshotHeaderBytes - SnapshotChecksumBytes)
            throw new SnapshotInvalidException($"{snapshot.Length} bytes, the header says {SnapshotHeaderBytes} + {bodyBytes} + {SnapshotChecksumBytes}");
        Span<byte> check = stackalloc byte[SnapshotChecksumBytes];
        SHA256.HashData(snapshot[..^SnapshotChecksumBytes], check);
        if (!check.SequenceEqual(snapshot[^SnapshotChecksumBytes..])) throw new SnapshotInvalidException("the checksum fails");
        var sm = new ExchangeStateMachine(emptyRegistry, options);
        RegistryParts registry;
        try
        {
            using var r = new BinaryReader(new MemoryStream(snapshot.Slice(SnapshotHeaderBytes, (int)bodyBytes).ToArray(), writable: false), System.Text.Encoding.UTF8);
            registry = sm.ReadBody(r);
            if (r.BaseStream.Position != r.BaseStream.Length) throw new InvalidDataException($"{r.BaseStream.Length - r.BaseStream.Position} bytes follow the state");
            sm.CheckInvariants();
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or InvalidOperationException or KeyNotFoundException or ArgumentException or OverflowException)
        {
            throw new SnapshotInvalidException(e.Message, e);
        }
        try { emptyRegistry.Restore(registry.Now, registry.LastId, registry.All, registry.Active); }
        catch (InvalidDataException e) { throw new SnapshotInvalidException(e.Message, e); }
        return sm;
    }

    private sealed record RegistryParts(long? Now, int LastId, List<Instrument> All, List<int> Active);

    private static void Write(BinaryWriter w, UInt128 v)
    {
        w.Write((ulong)v);
        w.Write((ulong)(v >> 64));
    }

    private static UInt128 ReadU128(BinaryReader r)
    {
        ulong lo = r.ReadUInt64();
        return new UInt128(r.ReadUInt64(), lo);
    }

    private static int ReadCount(BinaryReader r)
    {
        int n = r.ReadInt32();
        // Each item takes at least a byte: a count beyond what is left is damage (and must not size an allocation).
        if (n < 0 || n > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"a count of {n} with {r.BaseStream.Length - r.BaseStream.Position} bytes left");
        return n;
    }

    private static T ReadEnum<T>(BinaryReader r) where T : struct, Enum
    {
        byte b = r.ReadByte();
        // A table of the defined values, made once per type: Enum.ToObject and Enum.IsDefined box and reflect, and a
        // snapshot reads one enum per order, resting order and lease (they were a third of a restore's time).
        T? v = EnumBytes<T>.Values[b];
        return v ?? throw new InvalidDataException($"{b} is not a {typeof(T).Name}");
    }

    private static class EnumBytes<T> where T : struct, Enum
    {
        public static readonly T?[] Values = Build();

        private static T?[] Build()
        {
            var values = new T?[256];
            for (int b = 0; b < 256; b++)
            {
                T v = (T)Enum.ToObject(typeof(T), b);
                if (Enum.IsDefined(v)) values[b] = v;
            }
            return values;
        }
    }

    private void WriteBody(BinaryWriter w)
    {
        // Settings: a snapshot restores only under the ones it was written under (like the journal it stands for).
        w.Write(_options.Epoch); w.Write(_options.OrdersPerBookMax); w.Write(_options.PenaltyBasisPoints);
        w.Write(_lastSeq); w.Write(_lastTime); w.Write(_tradeSequence); w.Write(_lastPrune);

        // Instruments.
        w.Write(_instruments.Now is not null); w.Write(_instruments.Now ?? 0); w.Write(_instruments.LastId);
        List<Instrument> all = [.. _instruments.All];
        w.Write(all.Count);
        foreach (Instrument i in all)
        {
            w.Write(i.Id); w.Write(i.Symbol); w.Write((byte)i.Gpu); w.Write(i.Region); w.Write((byte)i.Kind);
            w.Write(i.DeliveryStart); w.Write(i.DeliveryEnd); w.Write(i.TradingStart); w.Write(i.TradingEnd);
            w.Write(i.Band.MinPrice); w.Write(i.Band.MaxPrice); w.Write(i.Band.Tick);
            w.Write((byte)i.Class); w.Write(i.Node);
        }
        w.Write(_instruments.Active.Count);
        foreach (Instrument i in _instruments.Active) w.Write(i.Id);

        // Participants and money.
        w.Write(_traders.Count);
        foreach (TraderState t in _traders.Values.OrderBy(t => t.Owner)) { w.Write(t.Owner); Write(w, t.Account); w.Write(t.Available); }
        w.Write(_providers.Count);
        foreach (ProviderState p in _providers.Values.OrderBy(p => p.Id)) { w.Write(p.Id); Write(w, p.Revenue); Write(w, p.Collateral); w.Write(p.CollateralAvailable); }
        w.Write(_pendingDeposits.Count);
        foreach ((long seq, PendingDeposit d) in _pendingDeposits.OrderBy(kv => kv.Key))
        {
            w.Write(seq); w.Write(d.Owner); w.Write(d.Amount); w.Write(d.Collateral); w.Write(d.Withdrawal);
            Transfer t = d.Transfer;
            w.Write(MemoryMarshal.AsBytes(new ReadOnlySpan<Transfer>(in t)));
        }

        // Nodes and capacity.
        List<NodeState> nodes = [.. _capacity.Nodes.OrderBy(n => n.Id)];
        w.Write(nodes.Count);
        foreach (NodeState n in nodes)
        {
            w.Write(n.Id); w.Write(n.Provider); w.Write(n.Name); w.Write((byte)n.Gpu); w.Write(n.Region); w.Write(n.Gpus);
            w.Write(n.DownSince is not null); w.Write(n.DownSince ?? 0);
        }
        w.Write(_capacity.Committed.Count);
        foreach (var kv in _capacity.Committed.OrderBy(k => k.Key.Provider).ThenBy(k => k.Key.Gpu).ThenBy(k => k.Key.Region, StringComparer.Ordinal).ThenBy(k => k.Key.Hour))
        { w.Write(kv.Key.Provider); w.Write((byte)kv.Key.Gpu); w.Write(kv.Key.Region); w.Write(kv.Key.Hour); w.Write(kv.Value); }
        w.Write(_capacity.Leased.Count);
        foreach (var kv in _capacity.Leased.OrderBy(k => k.Key.Node).ThenBy(k => k.Key.Hour)) { w.Write(kv.Key.Node); w.Write(kv.Key.Hour); w.Write(kv.Value); }
        w.Write(_capacity.LeasesOnAll.Count);
        foreach (var kv in _capacity.LeasesOnAll.OrderBy(k => k.Key))
        {
            w.Write(kv.Key); w.Write(kv.Value.Count);
            foreach (long id in kv.Value) w.Write(id);
        }

        // Orders, then the books they rest in (priority order is the books' own).
        w.Write(_orders.Count);
        foreach (OrderState o in _orders.Values.OrderBy(o => o.Id))
        {
            w.Write(o.Id); w.Write(o.Owner); w.Write(o.Instrument.Id); w.Write((byte)o.Side); w.Write(o.Limit); w.Write(o.Remaining);
            Write(w, o.HoldId); w.Write(o.HoldAmount); w.Write(o.ResoldLease);
        }
        w.Write(_books.Count);
        foreach (int id in _books.Keys.Order())
        {
            OrderBook book = _books[id];
            w.Write(id); w.Write(book.Band.MinPrice); w.Write(book.Band.MaxPrice); w.Write(book.Band.Tick);
            List<RestingOrder> resting = book.Orders();
            w.Write(resting.Count);
            foreach (RestingOrder o in resting)
            {
                w.Write(o.Id); w.Write(o.Owner); w.Write((byte)o.Side); w.Write(o.Price); w.Write(o.Remaining); w.Write(o.ExpiresAt); w.Write(o.PostOnly);
            }
        }

        // Leases, in the order they were made.
        var notStarted = new HashSet<long>(_leases.NotStarted);
        w.Write(_leases.Count);
        foreach (Lease l in _leases.All)
        {
            w.Write(l.Id); w.Write(l.Instrument); w.Write(l.Buyer); w.Write(l.Provider); w.Write(l.Payee); Write(w, l.PayeeAccount);
            w.Write(l.Parent is not null); w.Write(l.Parent ?? 0);
            w.Write(l.Start); w.Write(l.End); w.Write(l.Gpus); w.Write(l.Price); w.Write(l.Notional); Write(w, l.EscrowAccount);
            w.Write(l.Nodes.Count);
            foreach ((long node, int gpus) in l.Nodes) { w.Write(node); w.Write(gpus); }
            w.Write((byte)l.Status); w.Write(l.DeliveredGpuHours); w.Write(l.Paid); w.Write(l.Refunded); w.Write(l.Penalty);
            w.Write(l.PenaltyReserve); w.Write(l.PenaltyShortfall);
            w.Write(l.ResoldGpus.Count);
            foreach ((long hour, int gpus) in l.ResoldGpus.OrderBy(kv => kv.Key)) { w.Write(hour); w.Write(gpus); }
            w.Write(notStarted.Contains(l.Id));
        }

        // Why orders ended (what refusals and views still mention; its size decides when it is cleared).
        w.Write(_ended.Count);
        foreach ((long id, (OrderEndReason reason, long value)) in _ended.OrderBy(kv => kv.Key)) { w.Write(id); w.Write((byte)reason); w.Write(value); }

        // The share register.
        w.Write(_approvedIssuers.Count);
        foreach (long p in _approvedIssuers.Order()) w.Write(p);
        w.Write(_shareNodes.Count);
        foreach (ShareNodeState n in _shareNodes.Values.OrderBy(n => n.Node)) { w.Write(n.Node); w.Write(n.Issuer); w.Write(n.Supply); w.Write(n.Instrument); w.Write(n.IssuedAt); }
        w.Write(_holdings.Count);
        foreach (var kv in _holdings.OrderBy(k => k.Key.Node).ThenBy(k => k.Key.Holder))
        { w.Write(kv.Key.Holder); w.Write(kv.Key.Node); w.Write(kv.Value.Free); w.Write(kv.Value.Offered); w.Write(kv.Value.Pledged); }

        // Loans against pledged shares (their terms first: a snapshot restores only under the same), recent share trades, pledge accounts made.
        PledgeTerms terms = Terms;
        w.Write(terms.HaircutBp); w.Write(terms.MaxLoanToValueBp); w.Write(terms.MarginCallBp); w.Write(terms.LiquidationBp); w.Write(terms.InterestBpPerYear); w.Write(terms.VwapTrades);
        w.Write(_loans.Count);
        foreach (LoanState l in _loans.Values)
        {
            w.Write(l.Id); w.Write(l.Borrower); w.Write(l.Node); w.Write(l.Shares); w.Write(l.Lent); w.Write(l.Principal); w.Write(l.Interest); w.Write(l.Repaid);
            w.Write(l.OpenedAt); w.Write(l.AccruedTo); w.Write(l.Proceeds); w.Write(l.WrittenOff); Write(w, (UInt128)l.InterestRemainder); w.Write((byte)l.Status);
            w.Write(l.Lease);
        }
        w.Write(_vwap.Count);
        foreach (var kv in _vwap.OrderBy(k => k.Key))
        {
            w.Write(kv.Key); w.Write(kv.Value.Next); w.Write(kv.Value.Count);
            for (int i = 0; i < kv.Value.Count; i++) { w.Write(kv.Value.Prices[i]); w.Write(kv.Value.Quantities[i]); }
        }
        w.Write(_pledgeAccounts.Count);
        foreach ((long holder, long node) in _pledgeAccounts.OrderBy(k => k.Item1).ThenBy(k => k.Item2)) { w.Write(holder); w.Write(node); }
        // Since version 4: compute instruments' recent trades (the reference price of pledged leases).
        w.Write(_instrumentVwap.Count);
        foreach (var kv in _instrumentVwap.OrderBy(k => k.Key))
        {
            w.Write(kv.Key); w.Write(kv.Value.Next); w.Write(kv.Value.Count);
            for (int i = 0; i < kv.Value.Count; i++) { w.Write(kv.Value.Prices[i]); w.Write(kv.Value.Quantities[i]); }
        }
    }

    // Run once per start over hundreds of thousands of items: compiled optimized at once, not first as tier-0 code that
    // on-stack replacement swaps out only part-way through the loops.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private RegistryParts ReadBody(BinaryReader r)
    {
        ulong epoch = r.ReadUInt64();
        int ordersPerBook = r.ReadInt32(), penalty = r.ReadInt32();
        if (epoch != _options.Epoch || ordersPerBook != _options.OrdersPerBookMax || penalty != _options.PenaltyBasisPoints)
            throw new InvalidDataException($"written under epoch {epoch}, {ordersPerBook} orders per book, penalty {penalty} bp; restored under "
                + $"{_options.Epoch}, {_options.OrdersPerBookMax}, {_options.PenaltyBasisPoints}");
        _lastSeq = r.ReadUInt64(); _lastTime = r.ReadInt64(); _tradeSequence = r.ReadInt64(); _lastPrune = r.ReadInt64();

        bool started = r.ReadBoolean();
        long now = r.ReadInt64();
        int lastId = r.ReadInt32();
        var instruments = new Dictionary<int, Instrument>();
        var all = new List<Instrument>();
        for (int k = ReadCount(r); k > 0; k--)
        {
            var i = new Instrument(r.ReadInt32(), r.ReadString(), ReadEnum<GpuClass>(r), r.ReadString(), ReadEnum<DeliveryKind>(r),
                r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), new PriceBand(r.ReadInt64(), r.ReadInt64(), r.ReadInt64()))
            { Class = ReadEnum<InstrumentClass>(r), Node = r.ReadInt64() };
            if (!instruments.TryAdd(i.Id, i)) throw new InvalidDataException($"instrument {i.Id} twice");
            all.Add(i);
        }
        var active = new List<int>();
        for (int k = ReadCount(r); k > 0; k--) active.Add(r.ReadInt32());
        var activeSet = new HashSet<int>(active);

        for (int k = ReadCount(r); k > 0; k--)
        {
            var t = new TraderState(r.ReadInt64(), ReadU128(r)) { Available = r.ReadInt64() };
            if (!_traders.TryAdd(t.Owner, t)) throw new InvalidDataException($"trader {t.Owner} twice");
        }
        for (int k = ReadCount(r); k > 0; k--)
        {
            var p = new ProviderState(r.ReadInt64(), ReadU128(r), ReadU128(r)) { CollateralAvailable = r.ReadInt64() };
            if (!_providers.TryAdd(p.Id, p)) throw new InvalidDataException($"provider {p.Id} twice");
            if (!_traders.ContainsKey(p.Id)) throw new InvalidDataException($"provider {p.Id} is no trader");
            _collateralAccounts.Add(p.Collateral);
        }
        Span<byte> transfer = stackalloc byte[Transfer.Size];
        for (int k = ReadCount(r); k > 0; k--)
        {
            long seq = r.ReadInt64(), owner = r.ReadInt64(), amount = r.ReadInt64();
            bool collateral = r.ReadBoolean(), withdrawal = r.ReadBoolean();
            if (r.Read(transfer) != Transfer.Size) throw new EndOfStreamException();
            var d = new PendingDeposit(owner, amount, collateral, withdrawal) { Transfer = MemoryMarshal.Read<Transfer>(transfer) };
            if (!(collateral ? _providers.ContainsKey(owner) : _traders.ContainsKey(owner)) || !_pendingDeposits.TryAdd(seq, d))
                throw new InvalidDataException($"pending deposit {seq} twice or of nobody");
        }

        for (int k = ReadCount(r); k > 0; k--)
        {
            var n = new NodeState(r.ReadInt64(), r.ReadInt64(), r.ReadString(), ReadEnum<GpuClass>(r), r.ReadString(), r.ReadInt32());
            bool down = r.ReadBoolean();
            long since = r.ReadInt64();
            if (down) n.DownSince = since;
            if (!_providers.ContainsKey(n.Provider) || _capacity.TryGetNode(n.Id, out _)) throw new InvalidDataException($"node {n.Id} twice or of no provider");
            _capacity.AddNode(n); // in id order, as admitted: the pools keep it
        }
        var committed = new List<KeyValuePair<(long, GpuClass, string, long), int>>();
        for (int k = ReadCount(r); k > 0; k--) committed.Add(new((r.ReadInt64(), ReadEnum<GpuClass>(r), r.ReadString(), r.ReadInt64()), r.ReadInt32()));
        var leased = new List<KeyValuePair<(long, long), int>>();
        for (int k = ReadCount(r); k > 0; k--) leased.Add(new((r.ReadInt64(), r.ReadInt64()), r.ReadInt32()));
        var leasesOn = new List<KeyValuePair<long, List<long>>>();
        for (int k = ReadCount(r); k > 0; k--)
        {
            long node = r.ReadInt64();
            var list = new List<long>();
            for (int j = ReadCount(r); j > 0; j--) list.Add(r.ReadInt64());
            leasesOn.Add(new(node, list));
        }
        _capacity.Restore(committed, leased, leasesOn);

        int orderCount = ReadCount(r);
        _orders.EnsureCapacity(orderCount); // one allocation instead of a rehash at every doubling
        for (int k = orderCount; k > 0; k--)
        {
            var o = new OrderState
            {
                Id = r.ReadInt64(), Owner = r.ReadInt64(), Instrument = instruments.GetValueOrDefault(r.ReadInt32())!, Side = ReadEnum<Side>(r),
                Limit = r.ReadInt64(), Remaining = r.ReadInt64(), HoldId = ReadU128(r), HoldAmount = r.ReadInt64(), ResoldLease = r.ReadInt64(),
            };
            if (o.Instrument is null || !activeSet.Contains(o.Instrument.Id)) throw new InvalidDataException($"order {o.Id} is on an instrument not trading");
            if (!_traders.TryGetValue(o.Owner, out TraderState? t) || _orders.ContainsKey(o.Id)) throw new InvalidDataException($"order {o.Id} twice or of nobody");
            AddOrder(o, t);
        }
        for (int k = ReadCount(r); k > 0; k--)
        {
            int id = r.ReadInt32();
            var band = new PriceBand(r.ReadInt64(), r.ReadInt64(), r.ReadInt64());
            if (band.Tick <= 0 || band.MinPrice <= 0 || band.MaxPrice < band.MinPrice || _books.ContainsKey(id)) throw new InvalidDataException($"book {id} twice or with a bad band");
            var book = new OrderBook(band, _options.OrdersPerBookMax);
            for (int j = ReadCount(r); j > 0; j--)
                book.Restore(new RestingOrder(r.ReadInt64(), r.ReadInt64(), ReadEnum<Side>(r), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadBoolean()));
            _books.Add(id, book);
        }

        for (int k = ReadCount(r); k > 0; k--)
        {
            long id = r.ReadInt64();
            int instrument = r.ReadInt32();
            long buyer = r.ReadInt64(), provider = r.ReadInt64(), payee = r.ReadInt64();
            UInt128 payeeAccount = ReadU128(r);
            bool hasParent = r.ReadBoolean();
            long parent = r.ReadInt64();
            long start = r.ReadInt64(), end = r.ReadInt64();
            int gpus = r.ReadInt32();
            long price = r.ReadInt64(), notional = r.ReadInt64();
            UInt128 escrow = ReadU128(r);
            var leaseNodes = new List<(long, int)>();
            for (int j = ReadCount(r); j > 0; j--) leaseNodes.Add((r.ReadInt64(), r.ReadInt32()));
            var lease = new Lease
            {
                Id = id, Instrument = instrument, Buyer = buyer, Provider = provider, Payee = payee, PayeeAccount = payeeAccount, Parent = hasParent ? parent : null,
                Start = start, End = end, Gpus = gpus, Price = price, Notional = notional, EscrowAccount = escrow, Nodes = leaseNodes,
                Status = ReadEnum<LeaseStatus>(r), DeliveredGpuHours = r.ReadInt64(), Paid = r.ReadInt64(), Refunded = r.ReadInt64(), Penalty = r.ReadInt64(),
                PenaltyReserve = r.ReadInt64(), PenaltyShortfall = r.ReadInt64(),
            };
            for (int j = ReadCount(r); j > 0; j--) lease.ResoldGpus.Add(r.ReadInt64(), r.ReadInt32());
            bool notStarted = r.ReadBoolean();
            if (!_traders.ContainsKey(buyer) || !_traders.ContainsKey(payee) || !_providers.ContainsKey(provider)) throw new InvalidDataException($"lease {id} of nobody");
            if (lease.Parent is long p)
            {
                if (!_leases.TryGet(p, out _)) throw new InvalidDataException($"lease {id} resold from unknown lease {p}");
                if (!_resoldFrom.TryGetValue(p, out List<long>? children)) _resoldFrom[p] = children = [];
                children.Add(id); // leases come in the order they were made, as their children were added
            }
            _leases.Restore(lease, notStarted);
        }
        foreach (var kv in leasesOn)
            foreach (long id in kv.Value)
                if (!_leases.TryGet(id, out _)) throw new InvalidDataException($"node {kv.Key} carries unknown lease {id}");
        foreach (OrderState o in _orders.Values)
            if (o.ResoldLease != 0 && !_leases.TryGet(o.ResoldLease, out _)) throw new InvalidDataException($"order {o.Id} resells unknown lease {o.ResoldLease}");

        for (int k = ReadCount(r); k > 0; k--)
        {
            long id = r.ReadInt64();
            if (!_ended.TryAdd(id, (ReadEnum<OrderEndReason>(r), r.ReadInt64()))) throw new InvalidDataException($"order end {id} twice");
        }

        for (int k = ReadCount(r); k > 0; k--)
        {
            long p = r.ReadInt64();
            if (!_providers.ContainsKey(p) || !_approvedIssuers.Add(p)) throw new InvalidDataException($"issuer {p} twice or no provider");
        }
        for (int k = ReadCount(r); k > 0; k--)
        {
            var n = new ShareNodeState(r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt32(), r.ReadInt64());
            if (!instruments.TryGetValue(n.Instrument, out Instrument? si) || si.Class != InstrumentClass.NodeShares || si.Node != n.Node || !_shareNodes.TryAdd(n.Node, n))
                throw new InvalidDataException($"share node {n.Node} twice or without its instrument");
        }
        for (int k = ReadCount(r); k > 0; k--)
        {
            long holder = r.ReadInt64(), node = r.ReadInt64();
            var h = new HoldingState { Free = r.ReadInt64(), Offered = r.ReadInt64(), Pledged = r.ReadInt64() };
            if (!_shareNodes.ContainsKey(node) || !_holdings.TryAdd((holder, node), h)) throw new InvalidDataException($"holding of {holder} in node {node} twice or of no share node");
        }

        PledgeTerms terms = Terms;
        int[] written = [r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32()];
        if (!written.SequenceEqual([terms.HaircutBp, terms.MaxLoanToValueBp, terms.MarginCallBp, terms.LiquidationBp, terms.InterestBpPerYear, terms.VwapTrades]))
            throw new InvalidDataException($"written under pledge terms {string.Join('/', written)}, restored under other terms");
        for (int k = ReadCount(r); k > 0; k--)
        {
            var l = new LoanState
            {
                Id = r.ReadInt64(), Borrower = r.ReadInt64(), Node = r.ReadInt64(), Shares = r.ReadInt64(), Lent = r.ReadInt64(), Principal = r.ReadInt64(),
                Interest = r.ReadInt64(), Repaid = r.ReadInt64(), OpenedAt = r.ReadInt64(), AccruedTo = r.ReadInt64(), Proceeds = r.ReadInt64(), WrittenOff = r.ReadInt64(),
                InterestRemainder = (Int128)ReadU128(r), Status = ReadEnum<LoanStatus>(r), Lease = r.ReadInt64(),
            };
            if (!_traders.ContainsKey(l.Borrower) || (l.Lease == 0 && !_shareNodes.ContainsKey(l.Node)) || !_loans.TryAdd(l.Id, l)) throw new InvalidDataException($"loan {l.Id} twice or of nobody");
            if (l.Lease != 0 && l.IsOpen && (!_leases.TryGet(l.Lease, out _) || !_leaseLoans.TryAdd(l.Lease, l))) throw new InvalidDataException($"lease loan {l.Id}'s lease {l.Lease} gone or pledged twice");
        }
        for (int k = ReadCount(r); k > 0; k--)
        {
            long node = r.ReadInt64();
            var v = new VwapState(terms.VwapTrades) { Next = r.ReadInt32(), Count = r.ReadInt32() };
            if (v.Count < 0 || v.Count > terms.VwapTrades || v.Next < 0 || v.Next >= terms.VwapTrades || !_shareNodes.ContainsKey(node) || !_vwap.TryAdd(node, v))
                throw new InvalidDataException($"recent trades of node {node} twice or malformed");
            for (int i = 0; i < v.Count; i++)
            {
                v.Prices[i] = r.ReadInt64();
                v.Quantities[i] = r.ReadInt64();
                v.Notional += (Int128)v.Prices[i] * v.Quantities[i];
                v.Volume = checked(v.Volume + v.Quantities[i]);
            }
        }
        for (int k = ReadCount(r); k > 0; k--)
            if (!_pledgeAccounts.Add((r.ReadInt64(), r.ReadInt64()))) throw new InvalidDataException("a pledge account twice");
        for (int k = ReadCount(r); k > 0; k--)
        {
            int instrument = r.ReadInt32();
            var v = new VwapState(terms.VwapTrades) { Next = r.ReadInt32(), Count = r.ReadInt32() };
            if (v.Count < 0 || v.Count > terms.VwapTrades || v.Next < 0 || v.Next >= terms.VwapTrades || !instruments.ContainsKey(instrument) || !_instrumentVwap.TryAdd(instrument, v))
                throw new InvalidDataException($"recent trades of instrument {instrument} twice or malformed");
            for (int i = 0; i < v.Count; i++)
            {
                v.Prices[i] = r.ReadInt64();
                v.Quantities[i] = r.ReadInt64();
                v.Notional += (Int128)v.Prices[i] * v.Quantities[i];
                v.Volume = checked(v.Volume + v.Quantities[i]);
            }
        }

        // The instruments go to the registry only once everything is read and checked (the invariants read orders' own).
        return new RegistryParts(started ? now : null, lastId, all, active);
    }
}
