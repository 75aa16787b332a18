// Terminal helpers of the client: reading lines from a file descriptor,
// password prompts without echo (termios), yes/no questions, and the Ctrl-C
// flag that lets a running transfer stop cleanly.
//
// The interrupt flag is process-wide (set from a signal handler); everything
// else is stateless.
#pragma once

#include <string>

#include "common/status.h"

namespace redcloud::client {

// Installs the SIGINT handler: the first Ctrl-C sets the flag (transfers
// stop, the shell drops the current line); a second one while the flag is
// still set ends the process with status 130.
void installInterruptHandler();
bool interruptRequested();
void clearInterrupt();

bool stdinIsTerminal();
bool stdoutIsTerminal();

// Reads one line (without its '\n') byte by byte, so nothing beyond the line
// is consumed. False at end of input with nothing read, or on a read error.
bool readLineFd(int fd, std::string& line);

// Prompts on the terminal (/dev/tty) and reads a line with echo off.
Result<std::string> promptPassword(const std::string& prompt);

// The first line of standard input, without its newline (--password-stdin).
Result<std::string> readPasswordFromStdin();

// Asks `question` on stdout and reads an answer from stdin; true for y/yes.
bool confirm(const std::string& question);

}  // namespace redcloud::client
