using ComputeGrid.Inference.Model;
using ComputeGrid.Server.Inference;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// A simulated inference node behind the real gateway's <see cref="INodeChannel"/>: it answers at once with the model's
/// vectors, or, while a fault is on it, crashes mid-request, answers garbage, or sits behind a partition (dropped or
/// delayed). Faults are decided by the simulation at seeded steps; the node only plays them, so a run replays exactly.
/// </summary>
public sealed class SimNode(string id, long principal, int region, int gpus) : INodeChannel
{
    private readonly SimModel _model = new();

    /// <summary>The node's id (as admitted).</summary>
    public string Id => id;

    /// <summary>Its principal id: its exchange node id and its revenue account's number.</summary>
    public long Principal => principal;

    /// <summary>Its region's index in the latency data.</summary>
    public int Region => region;

    /// <summary>Its GPUs (sold on the exchange).</summary>
    public int Gpus => gpus;

    /// <summary>Down (crashed) until this step; it answers nothing and sends no heartbeat.</summary>
    public long DownUntilStep { get; set; } = -1;

    /// <summary>Partitioned from the server until this step.</summary>
    public long PartitionedUntilStep { get; set; } = -1;

    /// <summary>A partition that delays rather than drops (the answer comes, late).</summary>
    public bool PartitionDelays { get; set; }

    /// <summary>Crash in the middle of the next request (then down).</summary>
    public bool CrashNext { get; set; }

    /// <summary>Requests still to answer with garbage.</summary>
    public int GarbageLeft { get; set; }

    /// <summary>The step the simulation is at (set before each step's requests).</summary>
    public long Step { get; set; }

    /// <summary>Requests this node answered (whatever the gateway then made of the answer).</summary>
    public long Answered { get; private set; }

    /// <summary>Whether the node can be heard (heartbeats reach the server).</summary>
    public bool Reachable => Step >= DownUntilStep && !(Step < PartitionedUntilStep && !PartitionDelays);

    /// <inheritdoc />
    public Task<NodeRunResult> RunAsync(NodeWork work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Step < DownUntilStep) throw new IOException($"Node {id} is down.");
        if (CrashNext)
        {
            // Mid-request: the work was taken, the connection breaks before any answer.
            CrashNext = false;
            DownUntilStep = Step + 5;
            throw new IOException($"Node {id} crashed mid-request.");
        }
        double networkMs = 0;
        if (Step < PartitionedUntilStep)
        {
            if (!PartitionDelays) throw new TimeoutException($"Node {id} is partitioned from the server: the request was dropped.");
            networkMs = 400; // a congested link: the answer comes, late
        }
        int tokens = 0;
        var tokenized = new TokenizedInput[work.Inputs.Count];
        for (int i = 0; i < tokenized.Length; i++)
        {
            tokenized[i] = work.Tokenized is { } t ? t[i] : _model.Tokenize(work.Inputs[i]);
            tokens += tokenized[i].TokenCount;
        }
        var vectors = new float[tokenized.Length * _model.Dimensions];
        _model.Embed(tokenized, vectors);
        if (GarbageLeft > 0)
        {
            GarbageLeft--;
            Array.Fill(vectors, float.NaN); // not numbers: the gateway must refuse it and fail over
        }
        Answered++;
        return Task.FromResult(new NodeRunResult(vectors, _model.Dimensions, tokens, 0, 0, networkMs));
    }
}
