using System.Threading.Channels;
using ComputeGrid.Core;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Pipeline;

// A settlement the ledger refuses. The state machine plans within its mirror, so this should not happen; when it does
// (a bug, or the ledger changed behind the mirror) the exchange does not stop: the command is compensated.
//  1. The sequencer parks at its next batch boundary; every ledger call issued is drained (the ledger stage does not wait
//     between batches, so later batches' chains may be applied already, or refused because they needed the refused one).
//  2. The machine is rebuilt from the snapshot and journal up to the first batch not settled, without the command, and
//     every later command is applied again, planning its chains anew. Ids derive from sequence numbers, so a command the
//     refusal did not touch plans the same chain: one the ledger applied is not sent again. A transfer the ledger applied
//     that the rebuilt machine no longer plans the same (a later command decided otherwise without the refused one) is a
//     genuine inconsistency: fail-stop, as before, with nothing journaled (a restart replays the command and resubmits it).
//  3. An Excluded record naming the command, the transfer refused and the ledger's answer is journaled (durable before
//     anything acts on it): replay never applies the command again. Then the chains the ledger did not apply are sent.
//  4. If the ledger refuses one of those, the earliest such command is compensated too, and so on (each round excludes
//     one more command, so it ends). Then every submitter is answered: the refused command SettlementRefused, the later
//     ones with the rebuilt machine's results (none of them was answered before).
public sealed partial class ExchangePipeline
{
    /// <summary>The sequencer stops at a batch boundary while the ledger stage compensates (one per compensation).</summary>
    private sealed class Pause
    {
        public readonly TaskCompletionSource Requested = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource Parked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource Resumed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private volatile Pause _pause = new();
    private volatile bool _sequencerExited;
    private SnapshotTaken? _settledSnapshot; // the newest snapshot whose batch the ledger settled (the ledger stage's)
    private long _compensations;
    private volatile string? _lastCompensation;

    /// <summary>An account and a pending transfer no one creates: what <see cref="PipelineOptions.InjectLedgerRefusal"/> names.</summary>
    private static readonly UInt128 Nowhere = UInt128.MaxValue - 1;

    /// <summary>
    /// Settlements the ledger refused since start, each compensated (the command excluded, its submitter answered
    /// <see cref="ExchangeError.SettlementRefused"/>, the exchange going on), and the last one in words.
    /// </summary>
    public (long Count, string? Last) Compensations => (Interlocked.Read(ref _compensations), _lastCompensation);

    /// <summary>The ledger's refusal of a command's chain: the command, the transfer that failed, the ledger's answer.</summary>
    private readonly record struct Refusal(ulong Seq, UInt128 Transfer, CreateTransferResult Answer);

    /// <summary>Every answer to a batch's ledger calls, by account and transfer index.</summary>
    private sealed record LedgerAnswers(CreateAccountResult[] Accounts, CreateTransferResult[] Transfers);

    private static async Task<LedgerAnswers> AnswersAsync(LedgerCalls calls)
    {
        var accounts = new CreateAccountResult[calls.Accounts.Length];
        foreach ((int at, _, Task<CreateAccountResult[]> task) in calls.AccountTasks) (await task).CopyTo(accounts, at);
        var transfers = new CreateTransferResult[calls.Transfers.Length];
        foreach ((int start, _, Task<CreateTransferResult[]> task) in calls.TransferTasks) (await task).CopyTo(transfers, start);
        return new LedgerAnswers(accounts, transfers);
    }

    /// <summary>
    /// The earliest command of a batch whose chain the ledger refused (awaited transfers have their own answer path), or
    /// null. An account refused, or a transfer the ledger already holds (<c>Exists</c>: applied, so not compensable), throws.
    /// </summary>
    private static Refusal? FirstRefused(SettlementPlan plan, LedgerCalls calls, LedgerAnswers answers)
    {
        for (int i = 0; i < answers.Accounts.Length; i++)
            if (answers.Accounts[i] is not (CreateAccountResult.Ok or CreateAccountResult.Exists))
                throw new InvalidOperationException($"The ledger refused account {calls.Accounts[i].Id}: {answers.Accounts[i]}.");
        // Allocates nothing unless the ledger refused something.
        for (int i = 0; i < answers.Transfers.Length; i++)
            if (answers.Transfers[i] != CreateTransferResult.Ok && !IsAwaited(plan, i)) return Refused(calls.Transfers, answers.Transfers, i, SeqOf(plan)[i]);
        return null;
    }

    private static bool IsAwaited(SettlementPlan plan, int transfer)
    {
        foreach ((int i, _) in plan.Awaiting) if (i == transfer) return true;
        return false;
    }

    // The refusal of the chain holding event i: its failing event (the others answer LinkedEventFailed).
    private static Refusal Refused(Transfer[] sent, CreateTransferResult[] r, int i, ulong seq)
    {
        if (r[i] == CreateTransferResult.Exists)
            throw new InvalidOperationException($"The ledger already holds transfer {sent[i].Id} (code {sent[i].Code}) of command {seq}: applied, it cannot be compensated.");
        int first = i;
        while (first > 0 && (sent[first - 1].Flags & TransferFlags.Linked) != 0) first--;
        for (int k = first; k < r.Length; k++)
        {
            if (r[k] is not (CreateTransferResult.LinkedEventFailed or CreateTransferResult.Ok)) return new Refusal(seq, sent[k].Id, r[k]);
            if ((sent[k].Flags & TransferFlags.Linked) == 0) break;
        }
        return new Refusal(seq, sent[i].Id, r[i]);
    }

    /// <summary>The command (sequence) each transfer of a plan belongs to.</summary>
    private static ulong[] SeqOf(SettlementPlan plan)
    {
        var seqs = new ulong[plan.Transfers.Length];
        foreach (SettlementPlan.CommandSpan span in plan.Commands) seqs.AsSpan(span.FirstTransfer, span.Transfers).Fill(span.Seq);
        return seqs;
    }

    /// <summary>A plan's transfers as the ledger stage sends them: a copy, with the test-only refusals injected.</summary>
    private Transfer[] ToIssue(SettlementPlan plan)
    {
        Transfer[] transfers = plan.Transfers.ToArray();
        if (_options.InjectLedgerRefusal is not { } refuse) return transfers;
        var awaited = new HashSet<int>();
        foreach ((int i, _) in plan.Awaiting) awaited.Add(i);
        foreach (SettlementPlan.CommandSpan span in plan.Commands)
        {
            if (span.Transfers == 0 || !refuse(span.Seq)) continue;
            for (int i = span.FirstTransfer; i < span.FirstTransfer + span.Transfers; i++)
            {
                ref Transfer t = ref transfers[i];
                if ((t.Flags & TransferFlags.Linked) != 0 || awaited.Contains(i)) continue; // the last of each chain
                if ((t.Flags & (TransferFlags.PostPendingTransfer | TransferFlags.VoidPendingTransfer)) != 0) t.PendingId = Nowhere;
                else t.DebitAccountId = Nowhere;
            }
        }
        return transfers;
    }

    /// <summary>
    /// Compensates <paramref name="refused"/>: <paramref name="issued"/> are the batches whose ledger calls were issued,
    /// oldest first (the first holds the refused command). Throws (fail-stop) when it cannot; then every submitter of
    /// these batches is answered unavailable.
    /// </summary>
    private async Task CompensateAsync(List<(Batch Batch, LedgerCalls Calls)> issued, Refusal refused)
    {
        var batches = issued.Select(f => f.Batch).ToList();
        Pause pause = _pause;
        try
        {
            if (_journal is null || _options.Rebuild is null)
                throw new InvalidOperationException($"The ledger refused transfer {refused.Transfer} of command {refused.Seq}: {refused.Answer} (no journal to compensate it).");
            pause.Requested.TrySetResult();
            // What the ledger did with every call issued: the transfers it applied, and its answers to awaited ones.
            var applied = new Dictionary<UInt128, Transfer>();
            var answered = new Dictionary<UInt128, (Transfer Transfer, CreateTransferResult Answer)>();
            foreach ((Batch b, LedgerCalls calls) in issued)
            {
                LedgerAnswers answers = await AnswersAsync(calls);
                FirstRefused(b.Plan, calls, answers); // accounts refused, or Exists: not compensable
                Record(b.Plan.Transfers, [.. b.Plan.Awaiting.ToArray().Select(a => a.Transfer)], answers.Transfers, applied, answered);
            }
            // The batches the sequencer applied since, until it parks at its next batch boundary.
            ChannelReader<Batch> reader = _applied.Reader;
            while (!pause.Parked.Task.IsCompleted)
            {
                while (reader.TryRead(out Batch? b)) batches.Add(b);
                await Task.WhenAny(pause.Parked.Task, reader.WaitToReadAsync().AsTask());
            }
            while (reader.TryRead(out Batch? b)) batches.Add(b);
            if (_sequencerExited) throw new ExchangeUnavailableException($"The exchange stopped while compensating command {refused.Seq}.");

            await _readGate.WaitAsync();
            try { await CompensateParkedAsync(batches, refused, applied, answered); }
            finally { _readGate.Release(); }
        }
        catch (Exception e)
        {
            Stop(e, null); // the fault is set before any submitter hears of it
            foreach (Batch b in batches) Fail(b.Items, e);
            throw;
        }
        _pause = new Pause();
        pause.Resumed.TrySetResult();
    }

    // The transfers the ledger applied (as planned, without injected faults) and its answers to awaited ones.
    private static void Record(ReadOnlySpan<Transfer> planned, int[] awaitedIndexes, CreateTransferResult[] answers,
        Dictionary<UInt128, Transfer> applied, Dictionary<UInt128, (Transfer, CreateTransferResult)> answered)
    {
        for (int i = 0; i < answers.Length; i++)
        {
            if (answers[i] == CreateTransferResult.Ok) applied[planned[i].Id] = planned[i];
            else if (Array.IndexOf(awaitedIndexes, i) >= 0) answered[planned[i].Id] = (planned[i], answers[i]);
        }
    }

    // With the sequencer parked and the read gate held: the rounds of steps 2 to 4, then the answers.
    private async Task CompensateParkedAsync(List<Batch> batches, Refusal first, Dictionary<UInt128, Transfer> applied,
        Dictionary<UInt128, (Transfer Transfer, CreateTransferResult Answer)> answered)
    {
        // A snapshot taken after a batch not settled holds the refused command: never written; a rebuild starts from the
        // newest settled one.
        foreach (Batch b in batches)
            if (b.Snapshot is not null)
            {
                b.Snapshot = null;
                _snapshotBusy = false;
            }
        _lastSnapshot = _settledSnapshot;
        ulong from = batches[0].Items[0].Command.Seq;
        // What was published to market data before (the fills change only if trading did).
        List<FillRecord>[] published = [.. batches.Select(b => new List<FillRecord>(b.Fills))];

        var why = new Dictionary<ulong, CommandResult>(); // commands this compensation excluded: their answers
        var pending = new List<ExchangeCommand>();        // Excluded records to journal once the round is found sound
        var records = new List<ExchangeCommand>();        // the Excluded records journaled
        Refusal? refusal = first;
        ExchangeStateMachine sm;
        Dictionary<int, CreateTransferResult>[] awaited;
        while (true)
        {
            if (refusal is { } r)
            {
                why[r.Seq] = new CommandResult
                {
                    Error = ExchangeError.SettlementRefused, Status = OrderStatus.Rejected, Subject = (long)r.Seq,
                    Detail = RefusalDetail.LedgerRefused, DetailValue = (long)r.Answer,
                };
                _excluded.Add(r.Seq);
                pending.Add(new ExchangeCommand { Kind = ExchangeCommandKind.Excluded, Target = (long)r.Seq, Account = r.Transfer, Amount = (long)r.Answer });
            }
            refusal = null;
            sm = RebuildBefore(from, [], 0);
            if (!Replan(sm, batches, pending, why)) continue; // a command threw: excluded, round again
            // Step 2: what the ledger applied stands (else fail-stop, before anything is journaled); what it did not is sent.
            awaited = new Dictionary<int, CreateTransferResult>[batches.Count];
            var sends = new List<(int Batch, int[] Indexes, ulong[] Seqs, Transfer[] Sent)>();
            var planned = new HashSet<UInt128>();
            for (int bi = 0; bi < batches.Count; bi++)
            {
                SettlementPlan plan = batches[bi].Plan;
                awaited[bi] = [];
                (List<int> send, Dictionary<int, CreateTransferResult> known) = Reconcile(plan, applied, answered, planned);
                foreach ((int index, CreateTransferResult answer) in known) awaited[bi][index] = answer;
                if (send.Count == 0 && plan.Accounts.Length == 0) continue;
                Transfer[] all = ToIssue(plan);
                ulong[] seqs = SeqOf(plan);
                Transfer[] sent = [.. send.Select(i => all[i])];
                sends.Add((bi, [.. send], [.. send.Select(i => seqs[i])], sent));
            }
            foreach (UInt128 id in applied.Keys)
                if (!planned.Contains(id))
                    throw new InvalidOperationException($"Compensating command {first.Seq}: the ledger applied transfer {id}, which the exchange rebuilt without the refused commands no longer plans.");
            // Step 3, now that the round is sound: the exclusions are durable before anything acts on them.
            foreach (ExchangeCommand p in pending)
            {
                ExchangeCommand record = JournalExcluded(p);
                records.Add(record);
                if (record.Amount == 0) continue; // a command that threw (counted as a failure)
                _lastCompensation = $"the ledger refused transfer {record.Account} of command {record.Target}: {(CreateTransferResult)record.Amount}; the command is excluded (record {record.Seq})";
                Interlocked.Increment(ref _compensations);
            }
            pending.Clear();
            ApplyRecords(sm, records);
            // Issued in batch order (the ledger applies them so), then checked.
            var issued = sends.Select(x => IssueToLedger(batches[x.Batch].Plan.Accounts.ToArray(), x.Sent)).ToList();
            for (int si = 0; si < sends.Count; si++)
            {
                (int bi, int[] indexes, ulong[] seqs, Transfer[] sent) = sends[si];
                LedgerCalls calls = issued[si];
                LedgerAnswers answers = await AnswersAsync(calls);
                for (int i = 0; i < answers.Accounts.Length; i++)
                    if (answers.Accounts[i] is not (CreateAccountResult.Ok or CreateAccountResult.Exists))
                        throw new InvalidOperationException($"The ledger refused account {calls.Accounts[i].Id}: {answers.Accounts[i]}.");
                SettlementPlan plan = batches[bi].Plan;
                var awaitedIndexes = new HashSet<int>();
                foreach ((int i, _) in plan.Awaiting) awaitedIndexes.Add(i);
                for (int k = 0; k < indexes.Length; k++)
                {
                    Transfer t = plan.Transfers[indexes[k]];
                    CreateTransferResult answer = answers.Transfers[k];
                    if (awaitedIndexes.Contains(indexes[k]))
                    {
                        awaited[bi][indexes[k]] = answer;
                        if (answer == CreateTransferResult.Ok) applied[t.Id] = t;
                        else answered[t.Id] = (t, answer);
                    }
                    else if (answer == CreateTransferResult.Ok) applied[t.Id] = t;
                    else refusal ??= Refused(sent, answers.Transfers, k, seqs[k]);
                }
            }
            if (refusal is null) break;
        }

        // Market data: when the trades differ from those published, it is rebuilt as at a start (from the snapshot the
        // rebuild used), with the trades of these batches as now applied.
        bool traded = false;
        for (int bi = 0; bi < batches.Count && !traded; bi++) traded = !published[bi].SequenceEqual(batches[bi].Fills);
        if (traded && _options.Traded is { } feed)
        {
            _options.ReplayRestarting?.Invoke();
            sm = RebuildBefore(from, [], 0, feed);
            if (!Replan(sm, batches, pending, why)) throw new InvalidOperationException("A command threw on a replay that did not throw before.");
            ApplyRecords(sm, records);
            foreach (Batch b in batches) if (b.Fills.Count > 0) feed(b.Fills, sm);
        }
        _sm = sm;
        foreach (ExchangeCommand record in records) _recorded.Add((ulong)record.Target);
        for (int bi = 0; bi < batches.Count; bi++) Answer(batches[bi], awaited[bi]);
    }

    /// <summary>
    /// Applies every command of the batches to the rebuilt machine again (the excluded ones answered why they were). False
    /// when a command threw: it is excluded (its record to journal added to <paramref name="pending"/>), a new round needed.
    /// </summary>
    private bool Replan(ExchangeStateMachine sm, List<Batch> batches, List<ExchangeCommand> pending, Dictionary<ulong, CommandResult> why)
    {
        foreach (Batch b in batches)
        {
            b.Plan.Clear();
            b.Fills.Clear();
            for (int i = 0; i < b.Items.Count; i++)
            {
                ref ExchangeCommand c = ref b.Items[i].Command;
                if (_excluded.Contains(c.Seq))
                {
                    // Excluded before (its answer stands) or by this compensation.
                    if (why.TryGetValue(c.Seq, out CommandResult r)) b.Results[i] = r;
                    continue;
                }
                try { b.Results[i] = sm.Apply(in c, b.Plan, b.Fills); }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // As in the sequencer: a command that throws part-way leaves no trace.
                    why[c.Seq] = new CommandResult { Error = ExchangeError.CommandFailed, Status = OrderStatus.Rejected, Subject = (long)c.Seq };
                    _excluded.Add(c.Seq);
                    pending.Add(new ExchangeCommand { Kind = ExchangeCommandKind.Excluded, Target = (long)c.Seq });
                    _lastFailure = e;
                    Interlocked.Increment(ref _failedCommands);
                    return false;
                }
            }
        }
        return true;
    }

    // The Excluded records journaled after the batches: they change nothing but the machine's last seq and time.
    private static void ApplyRecords(ExchangeStateMachine sm, List<ExchangeCommand> records)
    {
        var plan = new SettlementPlan();
        var fills = new List<FillRecord>();
        foreach (ExchangeCommand record in records) sm.Apply(in record, plan, fills);
    }

    /// <summary>Journals an Excluded record (one record, one fsync); returns it with its seq and time.</summary>
    private ExchangeCommand JournalExcluded(ExchangeCommand record)
    {
        long time = Math.Max(_lastTime, Clock.UnixNanoseconds(_time));
        CommandCodec.Write(in record, _journal!.Stage(CommandCodec.Size(in record)));
        record.Seq = _journal.Commit(time);
        record.Time = time;
        _nextSeq = record.Seq + 1;
        _lastTime = time;
        return record;
    }

    /// <summary>
    /// Which of a re-planned batch's transfers to send: a chain none of whose transfers the ledger applied. A chain it
    /// applied must come out identical (then it is not sent); an awaited transfer it answered keeps its answer when it
    /// comes out identical. Anything else the ledger applied differs: throws (fail-stop). Adds every id planned to <paramref name="planned"/>.
    /// </summary>
    private static (List<int> Send, Dictionary<int, CreateTransferResult> Known) Reconcile(SettlementPlan plan, Dictionary<UInt128, Transfer> applied,
        Dictionary<UInt128, (Transfer Transfer, CreateTransferResult Answer)> answered, HashSet<UInt128> planned)
    {
        ReadOnlySpan<Transfer> transfers = plan.Transfers;
        var awaited = new HashSet<int>();
        foreach ((int i, _) in plan.Awaiting) awaited.Add(i);
        var send = new List<int>();
        var known = new Dictionary<int, CreateTransferResult>();
        int start = 0;
        while (start < transfers.Length)
        {
            int end = start;
            while ((transfers[end].Flags & TransferFlags.Linked) != 0) end++; // the chain is [start, end]
            int found = 0;
            for (int i = start; i <= end; i++)
            {
                planned.Add(transfers[i].Id);
                if (!applied.TryGetValue(transfers[i].Id, out Transfer was)) continue;
                if (!was.Equals(transfers[i]))
                    throw new InvalidOperationException($"The ledger applied transfer {was.Id} (code {was.Code}, {was.Amount}) as the exchange now plans it otherwise (code {transfers[i].Code}, {transfers[i].Amount}).");
                found++;
            }
            if (found != 0 && found != end - start + 1)
                throw new InvalidOperationException($"The ledger applied {found} of the {end - start + 1} transfers the exchange now plans in one chain (from {transfers[start].Id}).");
            if (found > 0)
            {
                if (awaited.Contains(start)) known[start] = CreateTransferResult.Ok;
            }
            else if (start == end && awaited.Contains(start) && answered.TryGetValue(transfers[start].Id, out var a) && a.Transfer.Equals(transfers[start]))
                known[start] = a.Answer;
            else
                for (int i = start; i <= end; i++) send.Add(i);
            start = end + 1;
        }
        return (send, known);
    }
}
