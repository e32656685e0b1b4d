// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title StateRootAnchor: the ledger's checkpoint roots, written by the operator, readable by anyone.
/// @notice One anchor stores one word, the Merkle-sum root under its op number, and moves the head; the log chain head
/// and the liabilities per asset are emitted in Anchored (they are in the receipt, part of the chain, at a fraction of
/// a storage write's gas). A liability is packed as (asset code << 128) | amount in the asset's minor units.
/// Op numbers strictly increase, so a root once anchored is never replaced.
contract StateRootAnchor {
    address public immutable operator;

    mapping(uint64 => bytes32) private _roots;
    // 1 before the first anchor, then latest op + 2: the constructor writes the 1 so that the first anchor also
    // updates a non-zero slot (5,000 gas instead of 22,100), and op 0 is distinct from "no anchor yet".
    uint256 private _head;

    event Anchored(uint64 indexed opNumber, bytes32 root, bytes32 logHead, uint256[] liabilities);

    constructor(address operator_) {
        require(operator_ != address(0), "zero address");
        operator = operator_;
        _head = 1;
    }

    function anchor(uint64 opNumber, bytes32 root, bytes32 logHead, uint256[] calldata liabilities) external {
        require(msg.sender == operator, "only operator");
        require(root != bytes32(0), "zero root");
        uint256 head = _head;
        require(head == 1 || uint256(opNumber) + 2 > head, "op number must increase");
        _roots[opNumber] = root;
        _head = uint256(opNumber) + 2;
        emit Anchored(opNumber, root, logHead, liabilities);
    }

    /// @notice The latest anchored op number and root; root is zero when nothing was anchored yet.
    function latest() external view returns (uint64 opNumber, bytes32 root) {
        uint256 head = _head;
        if (head == 1) return (0, bytes32(0));
        opNumber = uint64(head - 2);
        root = _roots[opNumber];
    }

    /// @notice The root anchored at `opNumber`, zero when none was.
    function rootAt(uint64 opNumber) external view returns (bytes32) {
        return _roots[opNumber];
    }
}
