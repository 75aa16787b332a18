// `redcloud node forget <node-id>`: the operator's way to remove a controller
// or chunkserver that is gone for good, through a controller's peer service
// (the cluster's internal interface). Prints what happened; returns the exit
// code.
#pragma once

namespace redcloud::controller {

int runNodeCommand(int argc, char** argv);

}  // namespace redcloud::controller
