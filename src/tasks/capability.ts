import type { CapabilityModule } from '../daemon/capability';
import { exportTasks, taskInterface, taskManagerInterface } from './dbus';

/** The TaskManager object and one Task object per task, kept in step with the queue. */
export const tasksCapability: CapabilityModule = {
  name: 'tasks',
  interfaces: [taskManagerInterface, taskInterface],
  async setup({ server, tasks, onPeerGone }) {
    exportTasks(server, tasks, onPeerGone);
    return { name: 'tasks' };
  },
};
