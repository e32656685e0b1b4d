// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title Erc20: the ERC-20 balances, allowances and transfers TestUSDC and NodeShareToken share.
/// @notice Abstract (no bytecode of its own). A token that must act on every balance move (the share token moves
/// revenue corrections) overrides `_afterTransfer`; mint and burn stay with each token, since each has its own rules.
abstract contract Erc20 {
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "allowance exceeded");
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    function _transfer(address from, address to, uint256 value) internal {
        require(to != address(0), "transfer to zero");
        uint256 balance = balanceOf[from];
        require(balance >= value, "balance exceeded");
        unchecked {
            balanceOf[from] = balance - value;
        }
        balanceOf[to] += value;
        _afterTransfer(from, to, value);
        emit Transfer(from, to, value);
    }

    /// @dev Called by every transfer between two holders (not by mint or burn), after the balances moved.
    function _afterTransfer(address from, address to, uint256 value) internal virtual {}

    function _approve(address owner_, address spender, uint256 value) internal {
        require(spender != address(0), "approve to zero");
        allowance[owner_][spender] = value;
        emit Approval(owner_, spender, value);
    }
}
